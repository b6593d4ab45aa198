"""Per-round results: metrics.jsonl, metrics.csv, summary.json, a rich progress bar, wandb."""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fedtna.config import RunConfig, to_plain
from fedtna.config.schema import WandbSettings


class WandbLogger:
    """Thin wrapper so that ``wandb.mode=disabled`` never imports or touches wandb."""

    def __init__(self, settings: WandbSettings, plain_config: Mapping[str, Any], output_dir: Path) -> None:
        self.run = None
        if settings.mode == "disabled":
            return
        import wandb

        self.run = wandb.init(
            mode=settings.mode,  # type: ignore[arg-type]  # a str of WANDB_MODES (fedtna.config.checks)
            project=settings.project or "fedtna",
            entity=settings.entity,
            config=dict(plain_config),
            dir=str(output_dir),
            reinit="finish_previous",
            **self.run_identity(settings, plain_config),
        )

    @staticmethod
    def run_identity(settings: WandbSettings, plain_config: Mapping[str, Any]) -> dict[str, Any]:
        """wandb group, job type and run name.

        A single run: ``wandb.group`` and ``wandb.name`` as set. A job of a Hydra multirun (any
        launcher or sweeper): one group per sweep (``wandb.group``, else the sweep directory), job
        type = the strategy's name, run name = ``wandb.name``, else the job's override string.
        """
        identity: dict[str, Any] = {"group": settings.group, "name": settings.name}
        try:
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
                return identity
            job = HydraConfig.get().job
            sweep_dir = str(HydraConfig.get().sweep.dir)
        except Exception:  # noqa: BLE001 - not inside a Hydra job (deployment, tests): a single run
            return identity
        strategy = plain_config.get("strategy")
        return {
            "group": settings.group or sweep_dir[-128:],
            "job_type": str(strategy.get("name")) if isinstance(strategy, Mapping) else None,
            "name": settings.name or job.override_dirname or f"job{job.num}",
        }

    def log(self, row: Mapping[str, Any]) -> None:
        """Log one round's metrics at step = round."""
        if self.run is not None:
            self.run.log(dict(row), step=int(row["round"]))

    def finish(self, summary: Mapping[str, Any]) -> None:
        """Write the summary and close the run."""
        if self.run is not None:
            self.run.summary.update(dict(summary))
            self.run.finish()


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunRecorder:
    """Writes each round as soon as it ends, so a crash never loses finished rounds."""

    def __init__(self, output_dir: str | Path, config: RunConfig,
                 finished_rows: list[dict[str, Any]] | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.seed = config.seed
        self.validates = config.validation_fraction > 0
        self.strategy_name = config.strategy_spec.name
        self.rows: list[dict[str, Any]] = [dict(row) for row in finished_rows or []]
        self.metrics_path = self.output_dir / "metrics.jsonl"
        self.metrics_path.write_text("".join(json.dumps(row) + "\n" for row in self.rows))
        if self.rows:
            self._write_csv()
        self.started = time.perf_counter()
        self.round_started = self.started
        self.wandb = WandbLogger(config.wandb, to_plain(config), self.output_dir)
        self.progress: Progress | None = None
        if config.progress:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("{task.fields[status]}"),
                console=Console(stderr=True), transient=False,
            )
            self.task = self.progress.add_task(self.strategy_name, total=config.num_rounds, status="",
                                               completed=len(self.rows))
            self.progress.start()

    def record_round(self, server_round: int, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """Append one round: JSON line, CSV, wandb, progress."""
        now = time.perf_counter()
        row = {"round": server_round, **{k: _plain(v) for k, v in metrics.items()},
               "seconds": round(now - self.round_started, 4)}
        self.round_started = now
        self.rows.append(row)
        with self.metrics_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        self._write_csv()
        self.wandb.log(row)
        if self.progress is not None:
            accuracy = row.get("test_accuracy")
            status = f"acc {accuracy:.4f}" if isinstance(accuracy, float) else ""
            if isinstance(row.get("val_accuracy"), float):
                status += f"  val {row['val_accuracy']:.4f}"
            if "fixed_fraction" in row:
                status += f"  fixed {row['fixed_fraction']:.3f}  drift {row.get('anchor_drift', 0.0):g}"
            self.progress.update(self.task, completed=server_round, status=status)
        return row

    def _write_csv(self) -> None:
        columns: list[str] = []
        for row in self.rows:
            columns += [key for key in row if key not in columns]
        with (self.output_dir / "metrics.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)

    def accuracy_summary(self, split: str) -> dict[str, float | None]:
        """Final and best ``{split}_accuracy`` and the mean of the last five evaluated rounds."""
        accuracies = [row[f"{split}_accuracy"] for row in self.rows if row.get(f"{split}_accuracy") is not None]
        last_five = accuracies[-5:]
        return {
            f"final_{split}_accuracy": accuracies[-1] if accuracies else None,
            f"best_{split}_accuracy": max(accuracies) if accuracies else None,
            f"last5_mean_{split}_accuracy": sum(last_five) / len(last_five) if last_five else None,
        }

    def summary(self) -> dict[str, Any]:
        """Final and best test (and validation) accuracy, mean of the last five evaluated rounds, wall time."""
        return {
            **self.accuracy_summary("test"),
            **(self.accuracy_summary("val") if self.validates else {}),
            "rounds": len(self.rows),
            "wall_seconds": round(time.perf_counter() - self.started, 3),
            "seed": self.seed,
            "strategy": self.strategy_name,
        }

    def close(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Stop the progress bar, write summary.json, finish wandb; returns the summary."""
        if self.progress is not None:
            self.progress.stop()
        summary = {**self.summary(), **(extra or {})}
        (self.output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        self.wandb.finish(summary)
        return summary
