"""Render a model-fusion result: lmc.png (accuracy and loss along alpha per mode) and the console table."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MODE_LABELS = {
    "vanilla": "vanilla",
    "tna_pfn": "TNA-PFN",
    "prune_init": "prune at init",
    "weight_matching": "weight matching",
    "tna_pfn_weight_matching": "TNA-PFN + weight matching",
}


def _number(value: float | None) -> float:
    """lmc.json stores a diverged (non-finite) value as null; plot and print it as NaN."""
    return math.nan if value is None else float(value)


def mean_curve(pairs: list[Mapping[str, Any]], key: str) -> list[float]:
    """Pointwise mean of one quantity over all pairs of a mode (NaN where a model diverged)."""
    curves = [[_number(value) for value in pair[key]] for pair in pairs]
    return [sum(values) / len(values) for values in zip(*curves, strict=True)]


def _percent(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}"


def plot_curves(result: Mapping[str, Any], path: Path) -> None:
    """Test accuracy and loss along the interpolation line, one line per mode (mean over pairs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (accuracy_axes, loss_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode, mode_result in result["modes"].items():
        pairs = mode_result["pairs"]
        alphas = pairs[0]["alphas"]
        summary = mode_result["summary"]
        label = MODE_LABELS.get(mode, mode)
        accuracy_axes.plot(alphas, [100 * value for value in mean_curve(pairs, "accuracy")], marker="o",
                           markersize=3, label=f"{label} (barrier {_percent(summary['accuracy_barrier_mean'], 1)} pts)")
        loss_axes.plot(alphas, mean_curve(pairs, "loss"), marker="o", markersize=3,
                       label=f"{label} (barrier {_number(summary['loss_barrier_mean']):.3f})")
    config = result["config"]
    title = (f"{config['model']['name']} on {config['dataset']['name']}, {config['num_models']} models, "
             f"init={config['init']}, data={config['data_split']}, rho={config['mask_ratio']}, seed={config['seed']}")
    accuracy_axes.set(xlabel="interpolation alpha (model A -> model B)", ylabel="test accuracy (%)",
                      title="accuracy along the line")
    loss_axes.set(xlabel="interpolation alpha (model A -> model B)", ylabel="test cross-entropy loss",
                  title="loss along the line")
    for axes in (accuracy_axes, loss_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def print_table(result: Mapping[str, Any]) -> None:
    """One row per mode: endpoints, barriers (mean over pairs) and multi-model fusion."""
    from rich.console import Console
    from rich.table import Table

    config = result["config"]
    table = Table(title=f"LMC barriers and fusion — {config['model']['name']}, rho={config['mask_ratio']}, "
                        f"{config['num_models']} models, seed={config['seed']}")
    for column in ("mode", "endpoint acc %", "acc barrier (pts)", "rel. acc barrier", "loss barrier",
                   "fused acc %", "mean acc %", "best acc %"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode, mode_result in result["modes"].items():
        summary, fusion = mode_result["summary"], mode_result["fusion"]
        table.add_row(
            MODE_LABELS.get(mode, mode),
            _percent(summary["endpoint_accuracy_mean"]),
            _percent(summary["accuracy_barrier_mean"]),
            f"{_percent(summary['accuracy_barrier_relative_mean'], 1)}%",
            f"{_number(summary['loss_barrier_mean']):.4f}",
            _percent(fusion["fused_accuracy"]),
            _percent(fusion["mean_accuracy"]),
            _percent(fusion["best_accuracy"]),
        )
    console = Console()
    if not console.is_terminal:  # logs and pipes: do not squeeze the table into 80 columns
        console = Console(width=130)
    console.print(table)
