"""Curves per round: one PNG per panel, one line per group (mean ± 1 std over seeds).

Test accuracy and loss always; the client-drift metrics (``fedtna.fl.update_geometry``) when the
runs recorded them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedtna.report.fl import FlAnalysis, Group
from fedtna.report.plotting import Colour, colours, legend, mean_band, new_figure, save, slug
from fedtna.report.settings import FL_CONTEXT, context

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _series(group: Group, key: str) -> tuple[list[int], list[list[float]]]:
    """Rounds where the first run has ``key``; one curve per seed (NaN where a value is null)."""
    rounds = [row["round"] for row in group.runs[0].rows if key in row]
    curves = []
    for run in group.runs:
        values: dict[int, Any] = {row["round"]: row.get(key) for row in run.rows if key in row}
        curves.append([math.nan if values.get(r) is None else float(values[r]) for r in rounds])
    return rounds, curves


# (metric, scale, y label, title), in plotting order; a metric no run recorded gets no axes
CURVE_METRICS = (
    ("test_accuracy", 100.0, "test accuracy (%)", "test accuracy"),
    ("test_loss", 1.0, "test loss (cross-entropy)", "test loss"),
    ("update_norm", 1.0, "mean ||w_k - w||", "how far clients move"),
    ("update_spread", 1.0, "RMS ||w_k - mean_k w_k||", "client disagreement (drift)"),
    ("update_agreement", 1.0, "||mean update|| / mean ||update||", "update agreement (1 = aligned)"),
    ("global_norm", 1.0, "||w||", "global model norm"),
)


def _draw(axes: Axes, group: Group, key: str, scale: float, colour: Colour, name: str) -> None:
    rounds, curves = _series(group, key)
    if not rounds:
        return
    mean, std = mean_band(curves)
    marker = "o" if len(rounds) <= 30 else None
    axes.plot(rounds, mean * scale, color=colour, marker=marker, markersize=3.5, linewidth=1.8,
              label=f"{name} (n={len(group.runs)}{', baseline' if group.is_baseline else ''})",
              linestyle="--" if group.is_baseline else "-")
    if std is not None:
        axes.fill_between(rounds, (mean - std) * scale, (mean + std) * scale, color=colour, alpha=0.18, linewidth=0)


def plot_panel(groups: list[Group], title: str, palette: dict, path: Path) -> Path:
    """Test accuracy (%) and test loss, then the drift metrics the runs have; x: round."""
    recorded = [metric for metric in CURVE_METRICS
                if any(metric[0] in row for group in groups for row in group.runs[0].rows)]
    rows = math.ceil(len(recorded) / 2)
    figure = new_figure(11.5, 4.2 * rows + 0.4)
    grid = figure.subplots(rows, 2, squeeze=False)
    all_axes = [axes for row in grid for axes in row]
    for axes, (key, scale, ylabel, subtitle) in zip(all_axes, recorded, strict=False):  # spare axes are hidden
        for group in groups:
            name = group.method or group.label
            _draw(axes, group, key, scale, palette[name], name)
        axes.set(xlabel="round", ylabel=ylabel, title=subtitle)
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    for axes in all_axes[len(recorded):]:
        axes.set_visible(False)
    legend(figure, all_axes[0])
    figure.suptitle(title, fontsize=11)
    return save(figure, path)


def plot_curves(analysis: FlAnalysis, out: Path) -> list[Path]:
    """One PNG per panel (``curves.png`` when there is one panel)."""
    palette = colours([group.method or group.label for group in analysis.groups])
    panels = analysis.panels
    paths = []
    for panel in panels:
        groups = [group for group in analysis.groups if group.panel == panel]
        seeds = sorted({len(group.runs) for group in groups})
        spread = "mean ± 1 std over seeds" if max(seeds) > 1 else "one seed"
        shared = context(groups[0].runs[0].config, FL_CONTEXT, analysis.varying, width=110)
        title = f"{panel or 'federated runs'} — {spread}\n{shared}"
        name = "curves.png" if len(panels) == 1 else f"curves-{slug(panel)}.png"
        paths.append(plot_panel(groups, title, palette, out / name))
    return paths
