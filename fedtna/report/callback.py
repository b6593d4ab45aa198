"""Hydra callbacks: a multirun of ``fedtna.run`` or ``fedtna.lmc`` ends with its report; failed jobs
set ``fedtna.run``'s exit code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from fedtna.errors import FedtnaError


class ReportCallback(Callback):
    """Reports ``hydra.sweep.dir`` after the last job. A failing report prints one line, never raises."""

    def __init__(self, baseline: str | None = None, plots: bool = True) -> None:
        self.baseline = baseline
        self.plots = plots

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = OmegaConf.select(config, "hydra.sweep.dir")
        try:
            from fedtna.report.build import build_report
            from fedtna.report.console import print_report

            print_report(build_report([sweep_dir], baseline=self.baseline, plots=self.plots))
        except Exception as error:  # noqa: BLE001 (the sweep's results must stay visible whatever happens)
            kind = "" if isinstance(error, FedtnaError) else f"{type(error).__name__}: "
            message = " ".join(f"{kind}{error}".split())
            print(f"error: report of {sweep_dir} failed: {message}", file=sys.stderr)


class FailedJobsCallback(Callback):
    """Collects the run folders under ``hydra.sweep.dir`` whose summary.json says failed, in the process
    that started the multirun; ``fedtna.run``'s ``main`` then exits 3 when there are any."""

    failed: ClassVar[list[Path]] = []  # of the last multirun that ended in this process

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from fedtna.fl.failures import failed_jobs

        FailedJobsCallback.failed = failed_jobs(OmegaConf.select(config, "hydra.sweep.dir"))
