"""``python -m fedtna.run`` (or ``fedtna-run``): one federated experiment, or a Hydra multirun sweep.

A single run that fails exits at once (3; bad input: 2). In a multirun a job that fails once
started is recorded in its summary.json and the sweep goes on; after the report the multirun
exits 3 when a job under ``hydra.sweep.dir`` failed (``fedtna/fl/failures.py``).
"""

from __future__ import annotations

import json
import sys

from fedtna.config import RunConfig, parse_run_config
from fedtna.config.entry import hydra_entry
from fedtna.errors import RunFailedError


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun (any launcher)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def objective(summary: dict) -> float | None:
    """What a sweeper (Optuna) maximises: the last-5 mean *validation* accuracy when the run held data out
    (``validation_fraction`` > 0), so a search never chooses on the test set; else the last-5 mean test
    accuracy; None for a failed run."""
    if summary.get("status") != "completed":
        return None
    if "last5_mean_val_accuracy" in summary:  # a run that held data out is never ranked on the test set
        return summary["last5_mean_val_accuracy"]
    return summary.get("last5_mean_test_accuracy")


def run(config: RunConfig) -> float | None:
    """Run one experiment, print its summary; returns its ``objective`` for sweepers (Optuna)."""
    from hydra.core.hydra_config import HydraConfig

    from fedtna.fl.experiment import run_experiment
    from fedtna.fl.failures import run_sweep_job
    from fedtna.fl.resume import resolve_resume

    config, finished = resolve_resume(config, list(HydraConfig.get().overrides.task))
    if finished is not None and finished.get("status") != "completed":  # resume=auto skips a diverged run
        note = (f"{config.output_dir} diverged before ({finished.get('reason')}); "
                "rerun_diverged=true runs it again from round 1")
        if not in_multirun():
            raise RunFailedError(note)
        print(f"skipped: {note}", file=sys.stderr)
    if finished is None:
        finished = run_sweep_job(config) if in_multirun() else run_experiment(config)
    summary = finished
    print(json.dumps(summary))
    return objective(summary)


hydra_main = hydra_entry("config", parse_run_config, run)


def main() -> None:
    """Hydra's main; then a multirun with a failed job exits 3 (its report has listed them)."""
    from fedtna.report.callback import FailedJobsCallback

    FailedJobsCallback.failed = []
    hydra_main()
    if FailedJobsCallback.failed:
        count = len(FailedJobsCallback.failed)
        print(f"error: {count} job{'s' * (count != 1)} of the sweep failed (see the report's Failed jobs)",
              file=sys.stderr)
        sys.exit(RunFailedError.exit_code)


if __name__ == "__main__":
    main()
