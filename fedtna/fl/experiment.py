"""One federated experiment from a typed config: checks, data, initial model, simulation, summary.

Everything here is shared by the entry points (``fedtna.run``, deployment, benchmarks):
they import from this module, never from the apps.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedtna.config import RunConfig, to_plain
from fedtna.config.checks import check_against_data, check_run_config
from fedtna.fl.local_data import all_partitions, dataset_bundle, held_out_split
from fedtna.masks import derive_seed, validate_scope
from fedtna.models import build_model


def initial_model(config: RunConfig) -> torch.nn.Module:
    """The global model at round 0, seeded by the run seed."""
    bundle = dataset_bundle(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init"))
        return build_model(config.model_spec, bundle.input_shape, bundle.num_classes)


def check_and_partition(config: RunConfig) -> Sequence[np.ndarray]:
    """All checks and data work that must happen before any client trains; every client's indices."""
    from fedtna.data.plot import check_label_range
    from fedtna.fl.engines import check_backend
    from fedtna.fl.strategies import build_strategy

    check_run_config(config)
    check_backend(config)
    flower_logger = logging.getLogger("flwr")
    level = flower_logger.level
    flower_logger.setLevel(logging.ERROR)  # Flower's constructor notes belong to the run, not the check
    try:
        build_strategy(config)  # the strategy's own argument checks, before any data
    finally:
        flower_logger.setLevel(level)
    bundle = dataset_bundle(config)
    split = held_out_split(config)
    check_against_data(config.num_clients, len(bundle.train_y), bundle.name,
                       len(split.validation) if split is not None else 0)
    check_label_range(bundle.train_y.numpy(), bundle.num_classes)  # the label plot is drawn later, beside round 1
    partitions = all_partitions(config)
    validate_scope(config.mask_spec.scope, initial_model(config))
    return partitions


def write_label_plot(config: RunConfig, partitions: Sequence[np.ndarray]) -> None:
    """label_distribution.png in the run folder."""
    from fedtna.data import plot_label_distribution

    bundle = dataset_bundle(config)
    plot_label_distribution(bundle.train_y.numpy(), partitions, bundle.num_classes,
                            Path(config.output_dir) / "label_distribution.png")


def write_label_plot_or_warn(config: RunConfig, partitions: Sequence[np.ndarray]) -> None:
    """The label plot drawn beside the run: a failure to write it (disk full, permissions) is a warning,
    never a failed run (the data checks ran before training)."""
    try:
        write_label_plot(config, partitions)
    except Exception as error:  # noqa: BLE001 - a picture must not fail a finished run
        logging.getLogger(__name__).warning("label_distribution.png was not written: %s: %s",
                                            type(error).__name__, error)


def prepare(config: RunConfig) -> None:
    """All checks and data work that must happen before any client trains; writes the label plot."""
    write_label_plot(config, check_and_partition(config))


@contextmanager
def in_background(work: Any, *arguments: Any) -> Iterator[None]:
    """Run ``work(*arguments)`` in a thread while the body runs; wait for it at the end and raise its
    error, unless the body raised first (the run's own error matters more than a plot's)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            work(*arguments)
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread below
            errors.append(error)

    thread = threading.Thread(target=target, name=getattr(work, "__name__", "background"), daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
    if errors:
        raise errors[0]


def write_config(config: RunConfig) -> None:
    """config.json: every resolved value of the run."""
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.json").write_text(json.dumps(to_plain(config), indent=2, default=str) + "\n")


def run_experiment(config: RunConfig) -> dict[str, Any]:
    """Validate, simulate and return the summary of one run."""
    from fedtna.fl.engines import simulate

    started = time.perf_counter()
    write_config(config)
    partitions = check_and_partition(config)
    with in_background(write_label_plot_or_warn, config, partitions):  # matplotlib's import and drawing overlap round 1
        summary = simulate(config)
    summary["total_wall_seconds"] = round(time.perf_counter() - started, 3)
    (Path(config.output_dir) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
