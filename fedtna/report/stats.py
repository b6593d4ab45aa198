"""Mean ± std over seeds and the paired difference with its t-distribution confidence interval."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeGuard


@dataclass(frozen=True)
class MeanStd:
    """Mean and sample standard deviation (n − 1; 0 for one value) of n values."""

    mean: float
    std: float
    n: int

    def text(self, scale: float = 100.0, digits: int = 2) -> str:
        return f"{self.mean * scale:.{digits}f} ± {self.std * scale:.{digits}f}"


def mean_std(values: Sequence[float]) -> MeanStd | None:
    """None for no values."""
    if not values:
        return None
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return MeanStd(statistics.fmean(values), std, len(values))


def is_number(value: object) -> TypeGuard[float]:
    """A finite int or float (not bool): what may enter an average."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class PairedDifference:
    """Mean of per-seed differences (method − baseline), its 95% t interval and the seeds won.

    ``low``/``high`` are None with fewer than two common seeds (no spread to estimate).
    """

    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    mean: float
    low: float | None
    high: float | None
    wins: int

    @property
    def n(self) -> int:
        return len(self.seeds)

    def ci_text(self, scale: float = 100.0, digits: int = 2) -> str:
        if self.low is None or self.high is None:
            return "n/a (1 seed)"
        return f"[{self.low * scale:+.{digits}f}, {self.high * scale:+.{digits}f}]"


def paired_difference(pairs: Mapping[int, tuple[float, float]], confidence: float = 0.95) -> PairedDifference | None:
    """``pairs``: seed -> (method value, baseline value). None when no seed is shared."""
    if not pairs:
        return None
    seeds = tuple(sorted(pairs))
    differences = tuple(pairs[seed][0] - pairs[seed][1] for seed in seeds)
    mean = statistics.fmean(differences)
    low = high = None
    if len(differences) > 1:
        from scipy.stats import t

        half = t.ppf(0.5 + confidence / 2, len(differences) - 1) * statistics.stdev(differences)
        half /= math.sqrt(len(differences))
        low, high = mean - half, mean + half
    return PairedDifference(seeds, differences, mean, low, high, sum(diff > 0 for diff in differences))
