"""Federated runs: group by differing settings, mean ± std over seeds, paired comparison with a baseline."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedtna.report.runs import FlRun, ReportError, uses_masks
from fedtna.report.selection import Selection
from fedtna.report.settings import (
    MISSING,
    Selector,
    differing_keys,
    format_value,
    is_mask_key,
    is_method_key,
    label,
    label_keys,
)
from fedtna.report.stats import MeanStd, PairedDifference, is_number, mean_std, paired_difference

HORIZON = "num_rounds"  # not a grouping key: runs of one setting must agree on it
DEFAULT_BASELINE = "strategy=fedavg"


@dataclass(frozen=True)
class Group:
    """Complete runs (one per seed) that share every setting but the seed and bookkeeping keys."""

    settings: dict[str, Any]  # grouping key -> value
    label: str  # the named settings, e.g. "strategy=fedpnu partition.alpha=0.1"
    panel: str  # the named non-method settings ("" when none differ)
    method: str  # the named method settings ("" when none differ)
    runs: tuple[FlRun, ...]
    is_baseline: bool
    final: MeanStd
    best: MeanStd
    last5: MeanStd
    rounds: int
    wall: MeanStd | None

    @property
    def seeds(self) -> tuple[Any, ...]:
        return tuple(run.seed for run in self.runs)


@dataclass(frozen=True)
class Comparison:
    """A group's last-5 accuracy against its baseline group, paired by seed."""

    group: Group
    baseline: Group | None
    result: PairedDifference | None
    note: str  # why there is no result, or ""


@dataclass(frozen=True)
class Excluded:
    path: Path
    label: str
    reason: str
    failed: bool = False  # summary.json says failed: listed under Failed jobs


@dataclass(frozen=True)
class FlAnalysis:
    keys: list[str]  # grouping keys: settings that differ between runs
    varying: list[str]  # the grouping keys and num_rounds if it differs (not "shared by all")
    named: list[str]  # the grouping keys labels name
    groups: list[Group]
    comparisons: list[Comparison]
    excluded: list[Excluded]
    baseline: str | None  # the baseline selector text, None when there is none
    method_keys: tuple[str, ...] = ()  # settings counted as method settings besides strategy.*, mask_*
    selection: Selection | None = None  # --select: the groups are each method at its values chosen on validation

    def is_method_key(self, key: str) -> bool:
        return is_method_key(key, self.method_keys)

    @property
    def panels(self) -> list[str]:
        return list(dict.fromkeys(group.panel for group in self.groups))

    def comparison_of(self, group: Group) -> Comparison | None:
        return next((item for item in self.comparisons if item.group is group), None)


def _order(value: Any) -> tuple:
    return (0, value, "") if is_number(value) else (1, 0, format_value(value))


def grouped_numbers(run: FlRun) -> tuple[float, float, float]:
    """(final, best, last-5 mean) test accuracy of a grouped run: only complete runs are grouped, and a
    complete run's final accuracy is finite (``fedtna.report.runs``), so all three exist."""
    final, best, last5 = run.numbers.final, run.numbers.best, run.numbers.last5
    assert final is not None and best is not None and last5 is not None, f"{run.path} is not complete"
    return final, best, last5


def _over_seeds(values: Sequence[float]) -> MeanStd:
    stats = mean_std(values)
    assert stats is not None, "a group has at least one run"
    return stats


def _make_group(runs: Sequence[FlRun], keys: Sequence[str], named: Sequence[str], baseline: Selector | None,
                extra: Sequence[str] = ()) -> Group:
    config = runs[0].config
    if not uses_masks(runs):  # no masks: their keys mean nothing
        named = [key for key in named if not is_mask_key(key)]
    numbers = [grouped_numbers(run) for run in runs]
    walls = [run.wall_seconds for run in runs if run.wall_seconds is not None]
    return Group(
        settings={key: config.get(key, MISSING) for key in keys},
        label=label(config, named) or label(config, ["strategy.name"]) or "all runs",
        panel=label(config, [key for key in named if not is_method_key(key, extra)]),
        method=label(config, [key for key in named if is_method_key(key, extra)]),
        runs=tuple(runs), is_baseline=baseline is not None and baseline.selects(config),
        final=_over_seeds([n[0] for n in numbers]), best=_over_seeds([n[1] for n in numbers]),
        last5=_over_seeds([n[2] for n in numbers]), rounds=runs[0].numbers.rounds, wall=mean_std(walls))


def _check_horizon(runs: Sequence[FlRun], named: Sequence[str]) -> None:
    horizons: dict[Any, FlRun] = {}
    for run in runs:
        horizons.setdefault(run.num_rounds, run)
    if len(horizons) > 1:
        where = ", ".join(f"{rounds} in {run.path}" for rounds, run in horizons.items())
        setting = label(runs[0].config, named) or "all runs"
        raise ReportError(f"runs of one setting ({setting}) have different num_rounds ({where}); "
                          "report each num_rounds separately")


def _comparison(group: Group, candidates: Sequence[Group], baseline: Selector, extra: Sequence[str] = ()) -> Comparison:
    panel = {key: value for key, value in group.settings.items() if not is_method_key(key, extra)}
    same_panel = [c for c in candidates if all(c.settings[key] == value for key, value in panel.items())
                  and c.runs[0].num_rounds == group.runs[0].num_rounds]
    if not same_panel:
        where = " ".join(filter(None, [group.panel, f"num_rounds={group.runs[0].num_rounds}"]))
        return Comparison(group, None, None, f"no {baseline.text} runs with {where}")
    ignore = baseline.keys(group.runs[0].config)

    def score(candidate: Group) -> int:
        return sum(candidate.settings[key] == value for key, value in group.settings.items()
                   if is_method_key(key, extra) and key not in ignore)

    best = max(score(candidate) for candidate in same_panel)
    chosen = [candidate for candidate in same_panel if score(candidate) == best]
    if len(chosen) > 1:
        return Comparison(group, None, None, "several baseline groups fit: " + "; ".join(c.label for c in chosen))
    base = chosen[0]
    pairs = {run.seed: (grouped_numbers(run)[2], grouped_numbers(other)[2])
             for run in group.runs for other in base.runs if other.seed == run.seed}
    result = paired_difference(pairs)
    return Comparison(group, base, result, "" if result else "no seed in common with the baseline")


def analyse_fl(runs: Sequence[FlRun], baseline_text: str | None = None, method_keys: Sequence[str] = ()) -> FlAnalysis:
    """Group, summarise and compare. ``baseline_text=None``: strategy=fedavg if there are such runs.
    ``method_keys``: settings that count as part of the method (compared within a panel), e.g. ``lr``."""
    extra = tuple(method_keys)
    configs = [run.config for run in runs]
    keys = differing_keys(configs, ignore=(HORIZON,))
    named = label_keys(configs, keys)
    by_setting: dict[tuple, list[FlRun]] = defaultdict(list)
    for run in sorted(runs, key=lambda run: str(run.path)):
        by_setting[tuple(run.config.get(key, MISSING) for key in keys)].append(run)
    for members in by_setting.values():
        _check_horizon(members, named)

    parsed = Selector.parse(baseline_text or DEFAULT_BASELINE)
    selector: Selector | None = parsed
    if not any(parsed.selects(config) for config in configs):
        if baseline_text is not None:
            raise ReportError(f"--baseline {baseline_text}: no run has these settings")
        selector = None

    groups, excluded = [], []
    for members in by_setting.values():
        kept: dict[Any, FlRun] = {}
        for run in members:
            if run.problem:
                excluded.append(Excluded(run.path, label(run.config, named), run.problem, run.failed))
            elif run.seed in kept:
                excluded.append(Excluded(run.path, label(run.config, named),
                                         f"duplicate of {kept[run.seed].path} (same settings and seed)"))
            else:
                kept[run.seed] = run
        if kept:
            ordered = sorted(kept.values(), key=lambda run: _order(run.seed))
            groups.append(_make_group(ordered, keys, named, selector, extra))
    panel_keys = [key for key in named if not is_method_key(key, extra)]
    ordering_keys = [key for key in named if is_method_key(key, extra)]
    groups.sort(key=lambda g: ([_order(g.settings[k]) for k in panel_keys], not g.is_baseline,
                               [_order(g.settings[k]) for k in ordering_keys], g.label))

    comparisons = []
    if selector is not None:
        baselines = [group for group in groups if group.is_baseline]
        comparisons = [_comparison(group, baselines, selector, extra) for group in groups if not group.is_baseline]
    return FlAnalysis(keys, differing_keys(configs), named, groups, comparisons, excluded,
                      selector.text if selector else None, extra)
