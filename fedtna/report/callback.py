"""A Hydra callback: a multirun of ``fedtna.run`` or ``fedtna.lmc`` ends with its report."""

from __future__ import annotations

import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class ReportCallback(Callback):
    """Reports ``hydra.sweep.dir`` after the last job. A failing report prints one line, never raises."""

    def __init__(self, baseline: str | None = None, plots: bool = True) -> None:
        self.baseline = baseline
        self.plots = plots

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            from fedtna.report.build import build_report
            from fedtna.report.console import print_report

            print_report(build_report([config.hydra.sweep.dir], baseline=self.baseline, plots=self.plots))
        except Exception as error:  # noqa: BLE001 (the sweep's results must stay visible whatever happens)
            print(f"error: report of {config.hydra.sweep.dir} failed: {type(error).__name__}: {error}",
                  file=sys.stderr)
