"""Shared matplotlib helpers: an Agg figure without pyplot's global state, colours, file names."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Colour = tuple[float, float, float, float]  # RGBA, as matplotlib's colormaps give it


def new_figure(width: float, height: float) -> Figure:
    """A Figure drawn by the Agg canvas: nothing registered with pyplot, safe in any thread or process."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def colours(names: Sequence[str]) -> dict[str, Colour]:
    """One colour per name, stable across panels (tab10, then tab20)."""
    from matplotlib import colormaps

    palette = [colormaps["tab10"](i) for i in range(10)] + [colormaps["tab20"](i) for i in range(1, 20, 2)]
    unique = list(dict.fromkeys(names))
    return {name: palette[i % len(palette)] for i, name in enumerate(unique)}


def slug(text: str) -> str:
    """A file-name-safe version of a panel label."""
    return re.sub(r"[^A-Za-z0-9.=+-]+", "_", text).strip("_")[:120] or "all"


def mean_band(curves: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray | None]:
    """Pointwise mean and sample std (n − 1) over curves of equal length; std None for one curve.

    NaN (a missing or diverged point) is left out of each point's mean.
    """
    values = np.array(curves, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN point stays NaN
        mean = np.nanmean(values, axis=0)
        std = np.nanstd(values, axis=0, ddof=1)
    std = np.where(np.isfinite(values).sum(axis=0) > 1, std, 0.0)
    return mean, (std if len(values) > 1 else None)


def legend(figure: Figure, axes: Axes) -> None:
    """One legend for the figure, below the plots, so it never hides a line."""
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        widest = max(len(label) for label in labels)
        columns = max(1, min(len(handles), 5, 150 // (widest + 6)))  # about 150 characters a row
        figure.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize=9, frameon=False)


def save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=130)
    return path
