"""``--select KEY``: each method at the values of the selected keys that do best on held-out validation data.

A *method* is every setting of a run but the selected keys and the seed; its *candidates* are the values of
the selected keys it was run at. Each method gets the candidate with the best mean validation last-5
accuracy over seeds (``val_accuracy`` in metrics.jsonl, from ``validation_fraction`` > 0); the report then
compares the methods at their chosen values on test accuracy, so the test set never chooses a setting.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fedtna.report.runs import FlRun, ReportError, numbers_from_rows, uses_masks
from fedtna.report.settings import (
    BOOKKEEPING,
    MISSING,
    differing_keys,
    format_value,
    is_mask_key,
    label,
    label_keys,
    matches,
)
from fedtna.report.stats import MeanStd, is_number, mean_std

VALIDATION_METRIC = "val_accuracy"


def validation_last5(run: FlRun) -> float | None:
    """Mean validation accuracy of the run's last five evaluated rounds (None: no validation metrics)."""
    return numbers_from_rows(run.rows, VALIDATION_METRIC).last5


@dataclass(frozen=True)
class Candidate:
    """One method at one combination of the selected keys' values, over its complete runs (one per seed)."""

    values: tuple[Any, ...]  # in the order of the selected keys; MISSING where a run has no such key
    runs: tuple[FlRun, ...]
    validation: MeanStd | None  # mean ± std over seeds of the validation last-5 accuracy
    eligible: bool  # it has every seed the method was run with (a diverged or missing seed rules it out)
    note: str  # why it is not eligible, or ""

    @property
    def seeds(self) -> tuple[Any, ...]:
        return tuple(run.seed for run in self.runs)


@dataclass(frozen=True)
class EdgeWarning:
    """The chosen value of a key is the lowest or highest value of its grid: a better one may lie beyond."""

    method: str
    key: str
    value: Any
    grid: tuple[Any, ...]

    @property
    def side(self) -> str:
        return "lowest" if self.value == self.grid[0] else "highest"

    def text(self) -> str:
        grid = ", ".join(format_value(value) for value in self.grid)
        beyond = "below" if self.side == "lowest" else "above"
        return (f"{self.method or 'all runs'}: the chosen {self.key}={format_value(self.value)} is the {self.side} "
                f"value of its grid [{grid}]; the best value may lie {beyond} it")


@dataclass(frozen=True)
class RuledOut:
    """A candidate left out of the selection because some of the method's seeds have no complete run there."""

    method: str
    values: str  # e.g. "lr=0.1"
    note: str  # which seeds lack a complete run

    def text(self) -> str:
        return f"{self.method or 'all runs'}: {self.values} is left out of the selection ({self.note})"


@dataclass(frozen=True)
class MethodChoice:
    """A method's candidates and the one chosen on validation accuracy."""

    label: str  # the method's settings, e.g. "strategy=fedprox partition.alpha=0.5" ("" when only one method)
    keys: tuple[str, ...]
    candidates: tuple[Candidate, ...]  # in grid order
    chosen: Candidate
    edges: tuple[EdgeWarning, ...]

    def values_text(self, candidate: Candidate | None = None) -> str:
        """``lr=0.05 strategy.proximal_mu=0.01``: the selected keys this method was run at several values of
        (all when none), at ``candidate`` (default: the chosen one)."""
        values = (candidate or self.chosen).values
        varied = [key for key in self.keys if len(self.grid(key)) > 1] or self.keys  # FedAvg: lr, not its mu=0
        return " ".join(f"{key}={format_value(value)}" for key, value in zip(self.keys, values, strict=True)
                        if value != MISSING and key in varied) or "–"

    @property
    def ruled_out(self) -> tuple[RuledOut, ...]:
        """Candidates without a complete run for every seed (diverged, failed or not run yet), the chosen one
        aside: it is chosen among those with the most runs when no candidate has every seed."""
        return tuple(RuledOut(self.label, self.values_text(c), c.note) for c in self.candidates
                     if not c.eligible and c is not self.chosen)

    def grid(self, key: str) -> tuple[Any, ...]:
        """The values of ``key`` this method was run at, sorted."""
        index = self.keys.index(key)
        return tuple(sorted({c.values[index] for c in self.candidates}, key=_order))


@dataclass(frozen=True)
class Selection:
    """Every method's choice; ``runs`` are those of the chosen candidates (and their incomplete runs)."""

    keys: tuple[str, ...]
    methods: tuple[MethodChoice, ...]
    runs: tuple[FlRun, ...]

    def choice_of(self, run: FlRun) -> MethodChoice | None:
        """The method choice a chosen run belongs to."""
        return next((method for method in self.methods if any(run.path == r.path for r in method.chosen.runs)),
                    None)

    @property
    def warnings(self) -> list[str]:
        """Choices without every seed, chosen values at the edge of their grid, candidates left out."""
        incomplete = [f"{method.label or 'all runs'}: no value has a complete run for every seed; "
                      f"{method.values_text()} was chosen among those with the most ({method.chosen.note})"
                      for method in self.methods if not method.chosen.eligible]
        return incomplete + [edge.text() for method in self.methods for edge in method.edges] + \
            [ruled.text() for method in self.methods for ruled in method.ruled_out]

    @property
    def has_edges(self) -> bool:
        return any(method.edges for method in self.methods)


def _order(value: Any) -> tuple:
    return (0, value, "") if is_number(value) else (1, 0, format_value(value))


def _check_keys(runs: Sequence[FlRun], keys: Sequence[str]) -> None:
    if not keys:
        raise ReportError("--select needs at least one key, e.g. --select lr")
    for key in keys:
        if key == "seed" or matches(key, BOOKKEEPING):
            raise ReportError(f"--select {key}: {key} does not change what a run computes; select a swept setting")
        if not any(key in run.config for run in runs):
            raise ReportError(f"--select {key}: no run has this key (a dotted config key, e.g. lr or "
                              "strategy.proximal_mu)")
    complete = [run for run in runs if run.problem is None]
    missing = [run for run in complete if validation_last5(run) is None]
    if not complete:
        raise ReportError("--select: no complete runs to choose from")
    if missing:
        raise ReportError(f"--select needs validation accuracy ({VALIDATION_METRIC} in metrics.jsonl, written by "
                          f"runs with validation_fraction > 0); {len(missing)} of {len(complete)} complete runs have "
                          f"none, e.g. {missing[0].path}")


def _candidate(values: tuple[Any, ...], runs: Sequence[FlRun], seeds: set[Any]) -> Candidate:
    kept: dict[Any, FlRun] = {}
    for run in sorted(runs, key=lambda run: str(run.path)):
        if run.problem is None:
            kept.setdefault(run.seed, run)
    ordered = tuple(sorted(kept.values(), key=lambda run: _order(run.seed)))
    scores = [score for run in ordered if (score := validation_last5(run)) is not None]
    lacking = sorted(seeds - set(kept), key=_order)
    note = f"no complete run for seed{'s' * (len(lacking) > 1)} {', '.join(map(str, lacking))}" if lacking else ""
    return Candidate(values, ordered, mean_std(scores), not lacking, note)


def _edges(method: str, keys: Sequence[str], chosen: Candidate, candidates: Sequence[Candidate]) -> list[EdgeWarning]:
    edges = []
    for index, key in enumerate(keys):
        grid = tuple(sorted({c.values[index] for c in candidates}, key=_order))
        value = chosen.values[index]
        if len(grid) >= 2 and all(is_number(v) for v in grid) and value in (grid[0], grid[-1]):
            edges.append(EdgeWarning(method, key, value, grid))
    return edges


def _choose(method: str, keys: tuple[str, ...], runs: Sequence[FlRun]) -> MethodChoice:
    by_values: dict[tuple, list[FlRun]] = defaultdict(list)
    for run in runs:
        by_values[tuple(run.config.get(key, MISSING) for key in keys)].append(run)
    seeds = {run.seed for run in runs if run.problem is None}
    candidates = [_candidate(values, members, seeds)
                  for values, members in sorted(by_values.items(), key=lambda item: [_order(v) for v in item[0]])]
    scored = [c for c in candidates if c.validation is not None]
    most = max(len(c.runs) for c in scored)
    eligible = [c for c in scored if c.eligible] or [c for c in scored if len(c.runs) == most]
    chosen = eligible[0]
    for candidate in eligible[1:]:  # the best mean; a tie keeps the first in grid order
        if candidate.validation is not None and chosen.validation is not None \
                and candidate.validation.mean > chosen.validation.mean:
            chosen = candidate
    return MethodChoice(method, keys, tuple(candidates), chosen, tuple(_edges(method, keys, chosen, candidates)))


def _method_label(runs: Sequence[FlRun], named: Sequence[str]) -> str:
    """The method's named settings; mask settings only when its clients trained under masks."""
    shown = named if uses_masks(runs) else [key for key in named if not is_mask_key(key)]
    return label(runs[0].config, shown)


def select(runs: Sequence[FlRun], keys: Sequence[str]) -> Selection:
    """Each method's candidate with the best mean validation last-5 accuracy; raises ReportError for selected
    keys no run has, or complete runs without validation metrics."""
    selected = tuple(dict.fromkeys(keys))
    _check_keys(runs, selected)
    configs = [run.config for run in runs]
    method_keys = differing_keys(configs, ignore=selected)
    named = label_keys(configs, method_keys)
    by_method: dict[tuple, list[FlRun]] = defaultdict(list)
    for run in runs:
        by_method[tuple(run.config.get(key, MISSING) for key in method_keys)].append(run)
    methods = [_choose(_method_label(members, named), selected, members) for members in by_method.values()
               if any(run.problem is None for run in members)]
    methods.sort(key=lambda method: method.label)
    chosen_runs = tuple(run for run in runs if any(_belongs(run, method, method_keys) for method in methods))
    return Selection(selected, tuple(methods), chosen_runs)


def _belongs(run: FlRun, method: MethodChoice, method_keys: Sequence[str]) -> bool:
    """Whether ``run`` (complete or not) is one of the method's chosen candidate's runs."""
    reference = method.chosen.runs[0].config
    same_method = all(run.config.get(key, MISSING) == reference.get(key, MISSING) for key in method_keys)
    return same_method and tuple(run.config.get(key, MISSING) for key in method.keys) == method.chosen.values
