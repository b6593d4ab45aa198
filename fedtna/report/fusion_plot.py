"""Interpolation curves of lmc.json runs: accuracy and loss along alpha per mode (mean ± 1 std over seeds)."""

from __future__ import annotations

import math
from pathlib import Path

from fedtna.fusion.plot import MODE_LABELS
from fedtna.report.fusion import FusionAnalysis, FusionSetting, mode_name
from fedtna.report.plotting import colours, legend, mean_band, new_figure, save, slug
from fedtna.report.settings import LMC_CONTEXT, context


def _seed_curve(pairs: list[dict], key: str) -> list[float]:
    """One run's curve: the mean over its model pairs (NaN where a model diverged)."""
    curves = [[math.nan if value is None else float(value) for value in pair[key]] for pair in pairs]
    return [sum(values) / len(values) for values in zip(*curves, strict=True)]


def plot_setting(setting: FusionSetting, palette: dict, shared: str, path: Path) -> Path:
    """Left: test accuracy (%) along alpha; right: test loss."""
    figure = new_figure(11.5, 4.6)
    accuracy_axes, loss_axes = figure.subplots(1, 2)
    for mode in setting.modes:
        runs = [run for run in setting.runs if mode in run.modes and run.modes[mode].get("pairs")]
        if not runs:
            continue
        alphas = runs[0].modes[mode]["pairs"][0]["alphas"]
        for axes, key, scale in ((accuracy_axes, "accuracy", 100.0), (loss_axes, "loss", 1.0)):
            mean, std = mean_band([_seed_curve(run.modes[mode]["pairs"], key) for run in runs])
            axes.plot(alphas, mean * scale, marker="o", markersize=3.5, linewidth=1.8, color=palette[mode],
                      label=f"{mode_name(mode)} (n={len(runs)})")
            if std is not None:
                axes.fill_between(alphas, (mean - std) * scale, (mean + std) * scale, color=palette[mode],
                                  alpha=0.18, linewidth=0)
    accuracy_axes.set(xlabel="alpha (model A → model B)", ylabel="test accuracy (%)", title="accuracy along the line")
    loss_axes.set(xlabel="alpha (model A → model B)", ylabel="test loss (cross-entropy)", title="loss along the line")
    for axes in (accuracy_axes, loss_axes):
        axes.grid(alpha=0.3)
    legend(figure, accuracy_axes)
    spread = "mean ± 1 std over seeds" if len(setting.runs) > 1 else "one seed"
    figure.suptitle(f"{setting.label} — linear interpolation, {spread} (each seed: mean over model pairs)\n{shared}",
                    fontsize=11)
    return save(figure, path)


def plot_fusion(analysis: FusionAnalysis, out: Path) -> list[Path]:
    """One PNG per setting (``fusion.png`` when there is one)."""
    palette = colours([*MODE_LABELS, *(mode for setting in analysis.settings for mode in setting.modes)])
    single = len(analysis.settings) == 1
    paths = []
    for setting in analysis.settings:
        shared = context(setting.runs[0].config, LMC_CONTEXT, analysis.keys, width=110)
        name = "fusion.png" if single else f"fusion-{slug(setting.label)}.png"
        paths.append(plot_setting(setting, palette, shared, out / name))
    return paths
