"""The federated part of the report as tables and text: per-panel group tables, comparisons, excluded runs."""

from __future__ import annotations

from fedtna.report.fl import FlAnalysis, Group
from fedtna.report.selection import Selection
from fedtna.report.settings import context, display_key
from fedtna.report.table import TextTable

METHOD_TEXT = (
    "Runs are grouped by every setting that differs between them except the seed and bookkeeping keys "
    "(output folders, logging, device, data location); each group shows mean ± sample std (n − 1) over its "
    "seeds. Accuracies are recomputed from each run's metrics.jsonl: final = the last evaluated round, "
    "best = the highest, last-5 = the mean of the last five evaluated rounds. "
    "**Paired comparison:** runs with the same seed share partitions, client sampling and the initial model, "
    "so each group is compared with the baseline group `{baseline}` that has the same values of the "
    "non-method settings (method settings: `strategy.*`, `mask_ratio`, `mask.*`; when several baseline "
    "groups fit, the one agreeing on most method settings). Δ is the mean over the seeds both groups have of "
    "(last-5 accuracy of the group − last-5 accuracy of the baseline), in accuracy points; the 95% CI is "
    "Δ ± t(0.975, n − 1) · s / √n with s the std of the n differences (scipy.stats.t); with one common seed "
    "there is no CI. *wins* counts the seeds where the group's last-5 accuracy is higher. "
    "Incomplete or failed runs (no summary.json, fewer metrics rows than num_rounds, a null/NaN final "
    "accuracy) and repeats of a seed are listed below and never averaged in; jobs whose summary.json says "
    "failed (diverged, crashed) are listed under Failed jobs."
)


def _points(value: float) -> str:
    return f"{100 * value:+.2f}"


def _cells(analysis: FlAnalysis, group: Group) -> list[str]:
    if group.is_baseline:
        return ["baseline", "", ""]
    comparison = analysis.comparison_of(group)
    if comparison is None or comparison.result is None:
        return ["–", comparison.note if comparison else "", ""]
    result = comparison.result
    return [_points(result.mean), result.ci_text(), f"{result.wins}/{result.n}"]


def _chosen_cell(analysis: FlAnalysis, group: Group) -> list[str]:
    """With ``--select``: the group's values chosen on validation, marked when one lies at its grid's edge."""
    if analysis.selection is None:
        return []
    choice = analysis.selection.choice_of(group.runs[0])
    if choice is None:
        return ["–"]
    return [choice.values_text() + (" ⚠ edge of grid" if choice.edges else "")]


def group_tables(analysis: FlAnalysis) -> list[TextTable]:
    """One table per panel; a row per group (with ``--select``, each method at its chosen values)."""
    chosen = ["chosen on validation"] if analysis.selection is not None else []
    columns = ["setting", *chosen, "seeds", "final acc %", "best acc %", "last-5 mean %", "Δ last-5 (pts)", "95% CI",
               "wins", "rounds", "wall s/run"]
    versus = f" (Δ: paired vs {analysis.baseline})" if analysis.baseline else ""
    selected = f", each method at its {'/'.join(analysis.selection.keys)} chosen on validation" \
        if analysis.selection is not None else ""
    tables = []
    for panel in analysis.panels:
        table = TextTable(f"Federated runs{': ' + panel if panel else ''}{versus}{selected}", columns)
        for group in (g for g in analysis.groups if g.panel == panel):
            table.rows.append([group.method or group.label, *_chosen_cell(analysis, group), str(len(group.runs)),
                               group.final.text(), group.best.text(), group.last5.text(), *_cells(analysis, group),
                               str(group.rounds), f"{group.wall.mean:.0f}" if group.wall else "–"])
        tables.append(table)
    return tables


def selection_table(selection: Selection) -> TextTable:
    """Per method: every candidate's validation last-5 accuracy (mean over seeds), the chosen one ticked."""
    keys = "/".join(selection.keys)
    table = TextTable(f"Selection of {keys} on validation data (val last-5 mean % over seeds; ✓ chosen)",
                      ["method", "chosen", "val last-5 %", "seeds", "every value: val last-5 %", "edge of grid"],
                      note="⚠: the chosen value lies at the edge of its grid" if selection.has_edges else "")
    for method in selection.methods:
        grid = []
        for candidate in method.candidates:
            score = f"{100 * candidate.validation.mean:.2f}" if candidate.validation else "–"
            text = f"{method.values_text(candidate)}: {score}"
            if candidate.note:
                text += f" ({candidate.note})"
            grid.append(f"{text} ✓" if candidate is method.chosen else text)
        chosen = method.chosen.validation
        edges = "; ".join(f"⚠ {edge.key} at its {edge.side} value" for edge in method.edges)
        table.rows.append([method.label or "all runs", method.values_text(), chosen.text() if chosen else "–",
                           str(len(method.chosen.runs)), ", ".join(grid), edges])
    return table


# (metric in metrics.jsonl, column): client-drift metrics of fedtna.fl.update_geometry
DRIFT_METRICS = (("update_norm", "client move ‖w_k − w‖"), ("update_spread", "disagreement (spread)"),
                 ("update_agreement", "agreement"), ("global_norm", "‖w‖ final"))


def _run_drift(group: Group, key: str) -> list[float]:
    """Per seed: the mean over rounds (the last round for the global norm); seeds without the metric skipped."""
    values = []
    for run in group.runs:
        series = [float(row[key]) for row in run.rows if isinstance(row.get(key), (int, float))]
        if series:
            values.append(series[-1] if key == "global_norm" else sum(series) / len(series))
    return values


def drift_tables(analysis: FlAnalysis) -> dict[str, TextTable]:
    """Per panel with drift metrics: each metric's mean over rounds per run, then mean ± std over seeds."""
    from fedtna.report.stats import mean_std

    tables = {}
    for panel in analysis.panels:
        groups = [g for g in analysis.groups if g.panel == panel]
        if not any(_run_drift(g, "update_spread") for g in groups):
            continue
        table = TextTable(f"Client drift{': ' + panel if panel else ''} (mean over rounds, then mean ± std over seeds)",
                          ["setting", "seeds", *(column for _, column in DRIFT_METRICS)])
        for group in groups:
            cells = []
            for key, _ in DRIFT_METRICS:
                stats = mean_std(_run_drift(group, key))
                cells.append(stats.text(1.0, 3) if stats else "–")
            table.rows.append([group.method or group.label, str(len(group.runs)), *cells])
        tables[panel] = table
    return tables


def excluded_table(analysis: FlAnalysis) -> TextTable | None:
    """Excluded runs other than failed jobs (those have their own table, ``fedtna.report.failed``)."""
    items = [item for item in analysis.excluded if not item.failed]
    if not items:
        return None
    table = TextTable("Incomplete, failed or repeated runs (not averaged)", ["run", "setting", "reason"])
    for item in items:
        table.rows.append([str(item.path), item.label or "–", item.reason])
    return table


def settings_sentence(keys: list[str], named: list[str], config: dict | None, shared_keys: tuple[str, ...],
                      varying: list[str] | None = None, shared_by: str = "all") -> str:
    """Which settings differ (named ones and those following from them) and what all runs share."""
    shared = context(config, shared_keys, varying if varying is not None else keys) if config else ""
    shared = f" Shared by {shared_by}: {shared}." if shared else ""
    if not keys:
        return "No setting differs between the runs except the seed." + shared
    text = "Settings that differ between runs: " + ", ".join(f"`{display_key(key)}`" for key in named) + "."
    hidden = [key for key in keys if key not in named]
    if hidden:
        text += " Also differing, but following from those: " + ", ".join(f"`{key}`" for key in hidden) + "."
    return text + shared


SELECTION_TEXT = (
    "**Selection (`--select {keys}`):** a method is every setting but `{keys}` and the seed. For each method, "
    "the value{s} of `{keys}` with the highest mean over seeds of the *validation* last-5 accuracy (`val_accuracy`: "
    "training data held out by `validation_fraction`, never trained on) {was} chosen among the values that have "
    "every seed of the method (a diverged or missing seed rules a value out; ties keep the lower value); the test "
    "set chose nothing. The tables compare each method at its chosen value{s} on test accuracy, paired by seed, "
    "with the baseline at its own chosen value{s}. ⚠ marks a chosen value at the edge of the grid tried: the "
    "best value may lie beyond it. "
)


def method_text(analysis: FlAnalysis) -> str:
    text = METHOD_TEXT.format(baseline=analysis.baseline or "(none: no strategy=fedavg runs; use --baseline)")
    if analysis.selection is None:
        return text
    keys = "`, `".join(analysis.selection.keys)
    several = len(analysis.selection.keys) > 1
    return SELECTION_TEXT.format(keys=keys, s="s" if several else "", was="were" if several else "was") + text
