"""Failed runs: what summary.json records, and how a multirun job survives its own failure.

A failed run's summary.json has ``status: failed`` and

* ``failure``: ``diverged`` (the global model, the test loss or client updates became
  non-finite; rerunning the same config diverges again, so ``resume=auto`` skips it unless
  ``rerun_diverged=true``), ``error`` (any other exception: client failures, a crash) or
  ``interrupted`` (Ctrl-C, a signal); the last two are resumed as any unfinished run;
* ``reason``: the error in one line;
* ``completed_rounds``: the rounds that finished before the failure (their rows stay in metrics.jsonl).

In a multirun, :func:`run_sweep_job` records a failure instead of raising it, so the sweep goes
on; bad input (a ``ConfigError`` or missing data, found before any round) still stops the sweep.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

from fedtna.config import RunConfig
from fedtna.errors import (
    ConfigError,
    DatasetUnavailableError,
    FedtnaError,
    RunDivergedError,
)

DIVERGED, ERROR, INTERRUPTED = "diverged", "error", "interrupted"
SUMMARY_FILE = "summary.json"


def failure_fields(error: BaseException, completed_rounds: int) -> dict[str, Any]:
    """summary.json's ``failure``, ``reason`` and ``completed_rounds`` for a run that ended with ``error``."""
    kind = DIVERGED if isinstance(error, RunDivergedError) else ERROR if isinstance(error, Exception) else INTERRUPTED
    text = str(error) if isinstance(error, FedtnaError) else f"{type(error).__name__}: {error}".rstrip(": ")
    return {"failure": kind, "reason": " ".join(text.split()), "completed_rounds": completed_rounds}


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """The run folder's summary.json, None when there is none (or it is cut off)."""
    path = Path(run_dir) / SUMMARY_FILE
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def _recorded_rounds(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else 0


def record_failure(run_dir: str | Path, error: BaseException) -> dict[str, Any]:
    """Make summary.json say that the run failed with ``error``; returns the summary.

    ``run_server`` already wrote it when the rounds had started; a run that failed before them
    (e.g. its engine did not start) gets a summary naming the rounds already on disk.
    """
    run_dir = Path(run_dir)
    recorded = read_summary(run_dir) or {}
    fields = failure_fields(error, _recorded_rounds(run_dir))
    if recorded.get("status") == "failed" and recorded.get("reason") == fields["reason"]:
        return recorded  # written by run_server for this very error
    summary = {"status": "failed", **fields}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run_sweep_job(config: RunConfig) -> dict[str, Any]:
    """One job of a multirun: a run that fails once its checks passed is recorded, not raised.

    Bad input (``ConfigError``, ``DatasetUnavailableError``) still raises, so it stops the sweep
    with one line as it stops a single run. An exception that is not a FedtnaError (a bug) also
    prints its traceback.
    """
    from fedtna.fl.experiment import run_experiment

    try:
        return run_experiment(config)
    except (ConfigError, DatasetUnavailableError):
        raise
    except Exception as error:  # noqa: BLE001 - one job's failure must not end the sweep
        if not isinstance(error, FedtnaError):
            traceback.print_exc()
        summary = record_failure(config.output_dir, error)
        print(f"job failed ({summary['failure']}): {summary['reason']}; the sweep goes on "
              f"({Path(config.output_dir) / SUMMARY_FILE})", file=sys.stderr)
        return summary


def failed_jobs(sweep_dir: str | Path) -> list[Path]:
    """Run folders under ``sweep_dir`` whose summary.json says failed."""
    folders = sorted(path.parent for path in Path(sweep_dir).rglob(SUMMARY_FILE))
    return [folder for folder in folders if (read_summary(folder) or {}).get("status") == "failed"]
