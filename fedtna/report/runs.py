"""Find and read run folders: ``fedtna.run`` runs (config.json + metrics.jsonl) and ``fedtna.lmc`` runs (lmc.json)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedtna.errors import FedtnaError
from fedtna.report.settings import flatten
from fedtna.report.stats import is_number


class ReportError(FedtnaError):
    """The runs cannot be reported as asked (printed as one ``error: ...`` line, exit code 2)."""


@dataclass(frozen=True)
class Numbers:
    """What one run's metrics.jsonl says: final, best and last-5-mean test accuracy over evaluated rounds."""

    final: float | None
    best: float | None
    last5: float | None
    rounds: int


def numbers_from_rows(rows: Sequence[dict[str, Any]], metric: str = "test_accuracy") -> Numbers:
    """Evaluated rounds are rows with a ``metric`` key (``val_accuracy``: the validation set); final = the last
    of them (None if null/NaN).

    Best and last-5 mean use the finite accuracies, as summary.json does.
    """
    evaluated = [row[metric] for row in rows if metric in row]
    final = evaluated[-1] if evaluated and is_number(evaluated[-1]) else None
    finite = [float(value) for value in evaluated if is_number(value)]
    last5 = finite[-5:]
    return Numbers(final=float(final) if final is not None else None, best=max(finite) if finite else None,
                   last5=sum(last5) / len(last5) if last5 else None, rounds=len(rows))


@dataclass(frozen=True)
class FlRun:
    """One ``fedtna.run`` run folder. ``problem`` says why it is incomplete or failed (None: complete)."""

    path: Path
    config: dict[str, Any]  # flattened config.json
    rows: list[dict[str, Any]]
    summary: dict[str, Any] | None
    problem: str | None
    numbers: Numbers = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "numbers", numbers_from_rows(self.rows))

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    @property
    def num_rounds(self) -> Any:
        return self.config.get("num_rounds")

    @property
    def failed(self) -> bool:
        """Its summary.json says failed (diverged, crashed): one of the report's Failed jobs."""
        return (self.summary or {}).get("status") == "failed"

    @property
    def wall_seconds(self) -> float | None:
        """Whole run including simulation start-up (total_wall_seconds), else the rounds' wall time."""
        summary = self.summary or {}
        value = summary.get("total_wall_seconds", summary.get("wall_seconds"))
        return float(value) if is_number(value) else None


def uses_masks(runs: Sequence[FlRun]) -> bool:
    """Whether the clients trained under masks (they report ``fixed_fraction``)."""
    return any("fixed_fraction" in row for run in runs for row in run.rows)


@dataclass(frozen=True)
class LmcRun:
    """One ``fedtna.lmc`` run: its lmc.json."""

    path: Path
    config: dict[str, Any]  # flattened lmc.json["config"]
    result: dict[str, Any]

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    @property
    def modes(self) -> dict[str, Any]:
        return self.result.get("modes") or {}


@dataclass(frozen=True)
class Unreadable:
    """A folder that looks like a run but whose files cannot be read."""

    path: Path
    problem: str


@dataclass(frozen=True)
class FoundRuns:
    fl: list[FlRun]
    lmc: list[LmcRun]
    unreadable: list[Unreadable]


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _rows(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            return rows, f"metrics.jsonl line {number} is not JSON (cut off?)"
    return rows, None


def read_fl_run(folder: Path, config: dict[str, Any]) -> FlRun:
    """Read metrics and summary; decide whether the run is complete."""
    flat = flatten(config)
    rows, problem = _rows(folder / "metrics.jsonl") if (folder / "metrics.jsonl").exists() else ([], "no metrics.jsonl")
    summary = None
    try:
        summary = _json(folder / "summary.json") if (folder / "summary.json").exists() else None
    except json.JSONDecodeError:
        problem = problem or "summary.json is not JSON"
    num_rounds = flat.get("num_rounds")
    if problem is None and isinstance(summary, dict) and summary.get("status") == "failed":
        problem = f"failed: {summary.get('reason') or 'no reason recorded'}"
    if problem is None and summary is None:
        problem = f"no summary.json ({len(rows)} of {num_rounds} rounds recorded: still running or stopped)"
    if problem is None and isinstance(num_rounds, int) and len(rows) < num_rounds:
        problem = f"{len(rows)} of {num_rounds} rounds in metrics.jsonl"
    if problem is None and numbers_from_rows(rows).final is None:
        problem = "final test accuracy is null or NaN (diverged?)"
    return FlRun(folder, flat, rows, summary, problem)


def find_runs(directories: Iterable[Path]) -> FoundRuns:
    """Every run under the folders (recursively), each folder read once even if given twice."""
    fl, lmc, unreadable, seen = [], [], [], set()
    for directory in directories:
        directory = Path(directory)
        if not directory.is_dir():
            raise ReportError(f"{directory} is not a folder")
        candidates = sorted({path.parent for name in ("config.json", "lmc.json") for path in directory.rglob(name)})
        for folder in candidates:
            if folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            try:
                if (folder / "lmc.json").exists():
                    result = _json(folder / "lmc.json")
                    lmc.append(LmcRun(folder, flatten(result.get("config") or {}), result))
                    continue
                config = _json(folder / "config.json")
            except (json.JSONDecodeError, OSError) as error:
                unreadable.append(Unreadable(folder, f"cannot read: {error}"))
                continue
            if isinstance(config, dict) and "num_rounds" in config and "strategy" in config:
                fl.append(read_fl_run(folder, config))
    return FoundRuns(fl, lmc, unreadable)
