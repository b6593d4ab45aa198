"""A Hydra callback: a multirun of ``fedtna.run`` or ``fedtna.lmc`` ends with its report."""

from __future__ import annotations

import sys
from typing import Any

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
