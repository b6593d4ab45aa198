"""Mask-ratio sweeps of federated runs: accuracy against ρ per masked method, to see where each collapses.

A series is the masked groups of one panel that share every method setting but ``mask_ratio``
(e.g. ``strategy=fedpnu`` at ρ 0.2 … 0.9); a series needs three ratios or more.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedtna.report.fl import FlAnalysis, Group, grouped_numbers
from fedtna.report.runs import uses_masks
from fedtna.report.settings import FL_CONTEXT, context, label
from fedtna.report.stats import is_number
from fedtna.report.table import TextTable

RATIO = "mask_ratio"
MIN_RATIOS = 3


@dataclass(frozen=True)
class RatioSeries:
    """One masked method over several mask ratios, within one panel."""

    panel: str
    name: str  # the method without the ratio, e.g. "strategy=fedpnu"
    points: tuple[Group, ...]  # ordered by ratio

    @property
    def ratios(self) -> list[float]:
        return [float(group.settings[RATIO]) for group in self.points]


def ratio_series(analysis: FlAnalysis) -> list[RatioSeries]:
    """Every series with at least three ratios, panel by panel, in the analysis's group order."""
    if RATIO not in analysis.keys:
        return []
    others = [key for key in analysis.named if analysis.is_method_key(key) and key != RATIO]
    found: dict[tuple, list[Group]] = {}
    for group in analysis.groups:
        if group.is_baseline or not is_number(group.settings[RATIO]) or not uses_masks(group.runs):
            continue
        key = (group.panel, tuple(group.settings[name] for name in others))
        found.setdefault(key, []).append(group)
    series = []
    for (panel, _), groups in found.items():
        if len({group.settings[RATIO] for group in groups}) >= MIN_RATIOS:
            name = label(groups[0].runs[0].config, others) or "masked runs"
            series.append(RatioSeries(panel, name, tuple(sorted(groups, key=lambda g: g.settings[RATIO]))))
    return series


def sweep_panels(analysis: FlAnalysis) -> list[str]:
    """Panels with at least one series, in order: ``plot_ratio_sweeps`` draws one PNG each."""
    return list(dict.fromkeys(item.panel for item in ratio_series(analysis)))


def _cells(analysis: FlAnalysis, group: Group | None) -> list[str]:
    if group is None:
        return ["–", "–"]
    comparison = analysis.comparison_of(group)
    result = comparison.result if comparison else None
    versus = "–" if result is None else f"{100 * result.mean:+.2f} {result.ci_text()} ({result.wins}/{result.n})"
    return [f"{group.last5.text()} (n={len(group.runs)})", versus]


def ratio_tables(analysis: FlAnalysis) -> dict[str, TextTable]:
    """Per panel with series: a row per ratio, last-5 accuracy and the paired Δ per series."""
    tables = {}
    every_series = ratio_series(analysis)
    for panel in analysis.panels:
        series = [item for item in every_series if item.panel == panel]
        if not series:
            continue
        ratios = sorted({ratio for item in series for ratio in item.ratios})
        columns = ["ρ"]
        for item in series:
            columns += [f"{item.name} last-5 %", f"{item.name} Δ [95% CI] (wins)"]
        versus = f"; Δ: paired vs {analysis.baseline}" if analysis.baseline else ""
        table = TextTable(f"Mask-ratio sweep{': ' + panel if panel else ''} (last-5 accuracy{versus})", columns)
        for ratio in ratios:
            row = [f"{ratio:g}"]
            for item in series:
                row += _cells(analysis, next((g for g in item.points if float(g.settings[RATIO]) == ratio), None))
            table.rows.append(row)
        tables[panel] = table
    return tables


def plot_ratio_sweeps(analysis: FlAnalysis, out: Path) -> list[Path]:
    """One PNG per panel with series: last-5 accuracy vs ρ (left), paired Δ vs the baseline (right)."""
    from fedtna.report.plotting import colours, legend, new_figure, save, slug

    series = ratio_series(analysis)
    panels = sweep_panels(analysis)
    palette = colours([item.name for item in series])
    paths = []
    for panel in panels:
        figure = new_figure(11.5, 4.8)
        accuracy_axes, delta_axes = figure.subplots(1, 2)
        for item in (s for s in series if s.panel == panel):
            colour = palette[item.name]
            means = [100 * group.last5.mean for group in item.points]
            stds = [100 * group.last5.std for group in item.points]
            accuracy_axes.errorbar(item.ratios, means, yerr=stds, color=colour, marker="o", capsize=3,
                                   linewidth=1.8, label=f"{item.name} (mean ± 1 std)")
            for ratio, group in zip(item.ratios, item.points, strict=True):
                values = [100 * grouped_numbers(run)[2] for run in group.runs]
                accuracy_axes.scatter([ratio] * len(values), values, color=colour, s=9, alpha=0.45, linewidths=0)
            comparisons = [(ratio, analysis.comparison_of(group))
                           for ratio, group in zip(item.ratios, item.points, strict=True)]
            compared = [(ratio, c.result) for ratio, c in comparisons if c is not None and c.result is not None]
            if compared:
                xs = [ratio for ratio, _ in compared]
                ys = [100 * result.mean for _, result in compared]
                low = [100 * (result.mean - result.low) if result.low is not None else 0.0 for _, result in compared]
                high = [100 * (result.high - result.mean) if result.high is not None else 0.0 for _, result in compared]
                delta_axes.errorbar(xs, ys, yerr=[low, high], color=colour, marker="o", capsize=3, linewidth=1.8)
        baseline = next((g for g in analysis.groups if g.is_baseline and g.panel == panel), None)
        if baseline is not None:
            mean, std = 100 * baseline.last5.mean, 100 * baseline.last5.std
            accuracy_axes.axhline(mean, color="black", linestyle="--", linewidth=1.2,
                                  label=f"{baseline.method or baseline.label} (baseline, n={len(baseline.runs)})")
            accuracy_axes.axhspan(mean - std, mean + std, color="black", alpha=0.08, linewidth=0)
        delta_axes.axhline(0.0, color="black", linestyle="--", linewidth=1.2)
        accuracy_axes.set(xlabel="mask ratio ρ (fraction of weights fixed)", ylabel="last-5 test accuracy (%)",
                          title="accuracy (dots: seeds)")
        delta_axes.set(xlabel="mask ratio ρ (fraction of weights fixed)", ylabel="Δ last-5 (points)",
                       title=f"paired Δ vs {analysis.baseline or 'baseline'}, 95% CI")
        for axes in (accuracy_axes, delta_axes):
            axes.grid(alpha=0.3)
        legend(figure, accuracy_axes)
        config = next(s for s in series if s.panel == panel).points[0].runs[0].config
        shared = context(config, FL_CONTEXT, analysis.varying, width=110)
        figure.suptitle(f"{panel or 'federated runs'} — mask-ratio sweep\n{shared}", fontsize=11)
        name = "ratio-sweep.png" if len(panels) == 1 else f"ratio-sweep-{slug(panel)}.png"
        paths.append(save(figure, out / name))
    return paths
