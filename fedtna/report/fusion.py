"""Model-fusion runs (lmc.json): barriers and fusion per setting and mode, vanilla vs TNA-PFN, rho sweeps."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fedtna.fusion.plot import MODE_LABELS
from fedtna.report.runs import LmcRun
from fedtna.report.settings import MISSING, differing_keys, format_value, label, label_keys
from fedtna.report.stats import is_number, mean_std
from fedtna.report.table import TextTable

RATIO = "mask_ratio"
NO_BARRIER = 1e-3  # a vanilla barrier below 0.1 accuracy points / 0.001 loss has nothing to reduce
# (column name, part of the mode's result, key, scale, digits)
METRICS = [("endpoint acc %", "summary", "endpoint_accuracy_mean", 100, 2),
           ("acc barrier (pts)", "summary", "accuracy_barrier_mean", 100, 2),
           ("rel. acc barrier %", "summary", "accuracy_barrier_relative_mean", 100, 1),
           ("loss barrier", "summary", "loss_barrier_mean", 1, 3),
           ("fused acc %", "fusion", "fused_accuracy", 100, 2),
           ("mean acc %", "fusion", "mean_accuracy", 100, 2)]


@dataclass(frozen=True)
class FusionSetting:
    """lmc.json runs (one per seed) of one setting; repeats of a seed have their modes merged."""

    settings: dict[str, Any]
    label: str
    sweep_label: str  # the label without mask_ratio
    runs: tuple[LmcRun, ...]

    @property
    def ratio(self) -> Any:
        return self.runs[0].config.get(RATIO)

    @property
    def modes(self) -> list[str]:
        return list(dict.fromkeys(mode for run in self.runs for mode in run.modes))

    def values(self, mode: str, part: str, key: str) -> list[float | None]:
        """One value per seed that has the mode; None where the model diverged."""
        return [(run.modes[mode].get(part) or {}).get(key) for run in self.runs if mode in run.modes]


@dataclass(frozen=True)
class FusionAnalysis:
    keys: list[str]  # settings that differ between runs
    named: list[str]  # the keys labels name
    settings: list[FusionSetting]
    sweeps: list[tuple[str, list[FusionSetting]]]  # settings run at several mask ratios, by ratio


def mode_name(mode: str) -> str:
    return MODE_LABELS.get(mode, mode)


def _describe(config: dict[str, Any]) -> str:
    model = config.get("model.name", "?") + format_value(config.get("model.hidden_sizes", ""))
    return f"{model} init={config.get('init')} ρ={format_value(config.get(RATIO))}"


def _merged(runs: Sequence[LmcRun]) -> LmcRun:
    modes: dict[str, Any] = {}
    for run in runs:
        for mode, result in run.modes.items():
            modes.setdefault(mode, result)
    return LmcRun(runs[0].path, runs[0].config, {**runs[0].result, "modes": modes})


def analyse_fusion(runs: Sequence[LmcRun]) -> FusionAnalysis:
    """Group by every differing setting but the seed; a (setting, seed) repeat counts once."""
    configs = [run.config for run in runs]
    keys = differing_keys(configs)
    named = label_keys(configs, keys)
    by_seed: dict[tuple, dict[Any, list[LmcRun]]] = defaultdict(lambda: defaultdict(list))
    for run in sorted(runs, key=lambda run: str(run.path)):
        by_seed[tuple(run.config.get(key, MISSING) for key in keys)][run.seed].append(run)
    sweep_keys = [key for key in keys if key != RATIO]
    sweep_named = label_keys(configs, sweep_keys)
    settings = []
    for key, seeds in by_seed.items():
        merged = tuple(_merged(repeats) for _, repeats in sorted(seeds.items(), key=lambda item: str(item[0])))
        config = merged[0].config
        settings.append(FusionSetting(dict(zip(keys, key, strict=True)), label(config, named) or _describe(config),
                                      label(config, sweep_named) or _describe(config).rsplit(" ρ", 1)[0],
                                      merged))
    settings.sort(key=lambda s: (s.sweep_label, float(s.ratio) if is_number(s.ratio) else 0.0))
    sweeps: dict[tuple, list[FusionSetting]] = defaultdict(list)
    for setting in settings:
        sweeps[tuple(setting.settings[key] for key in sweep_keys)].append(setting)
    return FusionAnalysis(keys, named, settings,
                          [(group[0].sweep_label, group) for group in sweeps.values()
                           if len({format_value(s.ratio) for s in group}) > 1])


def mean_std_text(values: Sequence[float | None], scale: float = 1.0, digits: int = 2) -> str:
    """mean ± std over seeds; a null value (diverged model) is counted, never averaged."""
    diverged = sum(not is_number(value) for value in values)
    stats = mean_std([float(value) for value in values if is_number(value)])
    if stats is None:
        return f"diverged ({diverged})" if diverged else "–"
    text = stats.text(scale, digits)
    return f"{text} ({diverged} diverged)" if diverged else text


def reduction(setting: FusionSetting, mode: str, key: str) -> float | None:
    """1 − mean(mode) / mean(vanilla): the fraction of vanilla's barrier the mode removes."""
    vanilla = [v for v in setting.values("vanilla", "summary", key) if is_number(v)]
    other = [v for v in setting.values(mode, "summary", key) if is_number(v)]
    if mode == "vanilla" or not vanilla or not other or statistics.fmean(vanilla) < NO_BARRIER:
        return None
    return 1 - statistics.fmean(other) / statistics.fmean(vanilla)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def headline_table(analysis: FusionAnalysis) -> TextTable:
    """Vanilla against TNA-PFN per setting: the comparison the paper's barrier-reduction claim is about."""
    table = TextTable("Vanilla vs TNA-PFN (barriers in accuracy points, mean ± std over seeds)",
                      ["setting", "seeds", "acc barrier vanilla", "acc barrier TNA-PFN", "reduction",
                       "loss barrier vanilla", "loss barrier TNA-PFN", "reduction", "fused acc vanilla %",
                       "fused acc TNA-PFN %"])
    for s in analysis.settings:
        if "vanilla" not in s.modes or "tna_pfn" not in s.modes:
            continue
        seeds = sum("vanilla" in run.modes and "tna_pfn" in run.modes for run in s.runs)
        table.rows.append([
            s.label, str(seeds),
            mean_std_text(s.values("vanilla", "summary", "accuracy_barrier_mean"), 100),
            mean_std_text(s.values("tna_pfn", "summary", "accuracy_barrier_mean"), 100),
            _percent(reduction(s, "tna_pfn", "accuracy_barrier_mean")),
            mean_std_text(s.values("vanilla", "summary", "loss_barrier_mean"), 1, 3),
            mean_std_text(s.values("tna_pfn", "summary", "loss_barrier_mean"), 1, 3),
            _percent(reduction(s, "tna_pfn", "loss_barrier_mean")),
            mean_std_text(s.values("vanilla", "fusion", "fused_accuracy"), 100),
            mean_std_text(s.values("tna_pfn", "fusion", "fused_accuracy"), 100)])
    return table


def modes_table(analysis: FusionAnalysis) -> TextTable:
    """Every setting and mode: endpoints, barriers, reductions against vanilla, fusion."""
    table = TextTable("Every mode (mean ± std over seeds)",
                      ["setting", "mode", "seeds", *(m[0] for m in METRICS[:4]), "acc-barrier reduction",
                       "loss-barrier reduction", *(m[0] for m in METRICS[4:])])
    for s in analysis.settings:
        for mode in s.modes:
            cells = [mean_std_text(s.values(mode, part, key), scale, digits) for _, part, key, scale, digits in METRICS]
            table.rows.append([s.label, mode_name(mode), str(len(s.values(mode, "summary", "loss_barrier_mean"))),
                               *cells[:4], _percent(reduction(s, mode, "accuracy_barrier_mean")),
                               _percent(reduction(s, mode, "loss_barrier_mean")), *cells[4:]])
    return table


def sweep_tables(analysis: FusionAnalysis) -> list[TextTable]:
    """Per setting run at several mask ratios: barriers and endpoint accuracy against rho."""
    columns = [("vanilla", "summary", "accuracy_barrier_mean", "vanilla acc barrier", 100, 2),
               ("tna_pfn", "summary", "accuracy_barrier_mean", "TNA-PFN acc barrier", 100, 2),
               ("prune_init", "summary", "accuracy_barrier_mean", "prune-init acc barrier", 100, 2),
               ("vanilla", "summary", "loss_barrier_mean", "vanilla loss barrier", 1, 3),
               ("tna_pfn", "summary", "loss_barrier_mean", "TNA-PFN loss barrier", 1, 3),
               ("tna_pfn", "summary", "endpoint_accuracy_mean", "TNA-PFN endpoint acc %", 100, 2),
               ("prune_init", "summary", "endpoint_accuracy_mean", "prune-init endpoint acc %", 100, 2),
               ("tna_pfn", "fusion", "fused_accuracy", "TNA-PFN fused acc %", 100, 2)]
    tables = []
    for name, settings in analysis.sweeps:
        present = [c for c in columns if any(c[0] in s.modes for s in settings)]
        table = TextTable(f"ρ sweep: {name} (mean ± std over seeds)", ["ρ", "seeds", *(c[3] for c in present)])
        for s in settings:
            table.rows.append([format_value(s.ratio), str(len(s.runs)),
                               *(mean_std_text(s.values(mode, part, key), scale, digits)
                                 for mode, part, key, _, scale, digits in present)])
        tables.append(table)
    return tables


SOUPS = (("best_single", "best single"), ("uniform", "uniform soup"), ("greedy", "greedy soup"))


def soups_table(analysis: FusionAnalysis) -> TextTable | None:
    """Fine-tuned copies averaged (lmc.json ``soups``, runs with ``holdout`` > 0): test accuracy of the best
    single model, the uniform and the greedy soup (chosen on held-out training data), per setting and mode."""
    table = TextTable("Model soups (test accuracy %, mean ± std over seeds; choices on held-out training data)",
                      ["setting", "mode", "seeds", *(name for _, name in SOUPS), "greedy ingredients"])
    for s in analysis.settings:
        for mode in s.modes:
            cooked = [(run.modes[mode].get("soups") or {}) for run in s.runs if mode in run.modes]
            cooked = [soups for soups in cooked if soups]
            if not cooked:
                continue
            cells = [mean_std_text([soups[key]["test_accuracy"] for soups in cooked], 100) for key, _ in SOUPS]
            sizes = mean_std([float(len(soups["greedy"]["ingredients"])) for soups in cooked])
            table.rows.append([s.label, mode_name(mode), str(len(cooked)), *cells,
                               sizes.text(1.0, 1) if sizes else "–"])
    return table if table.rows else None


def records(analysis: FusionAnalysis) -> list[dict[str, Any]]:
    """One flat record per setting and mode, for report.csv and report.json."""
    rows = []
    for s in analysis.settings:
        for mode in s.modes:
            row: dict[str, Any] = {"kind": "fusion", "label": s.label, "mode": mode, "mask_ratio": s.ratio,
                                   "seeds": len(s.values(mode, "summary", "loss_barrier_mean"))}
            for _, part, key, _, _ in METRICS:
                values = s.values(mode, part, key)
                stats = mean_std([float(v) for v in values if is_number(v)])
                base = key.removesuffix("_mean")
                row[f"{base}_mean"] = stats.mean if stats else None
                row[f"{base}_std"] = stats.std if stats else None
                row[f"{base}_diverged"] = sum(not is_number(v) for v in values)
            row["accuracy_barrier_reduction"] = reduction(s, mode, "accuracy_barrier_mean")
            row["loss_barrier_reduction"] = reduction(s, mode, "loss_barrier_mean")
            rows.append(row)
    return rows
