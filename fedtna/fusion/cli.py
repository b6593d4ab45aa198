"""The fusion experiment behind ``python -m fedtna.lmc``: train K models per mode, interpolate every pair, fuse, plot.

Writes lmc.json (config, endpoints, curves, barriers, fusion per mode) and lmc.png to the
Hydra run directory and prints a table. Bad input is one ``error: ...`` line, exit code 2.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from fedtna.config import LmcConfig


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[str, int], Callable[[], None]]]:
    """Yields ``start(description, total) -> advance``; a no-op when progress is off."""
    if not enabled:
        yield lambda description, total: (lambda: None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True)) as progress:

        def start(description: str, total: int) -> Callable[[], None]:
            task = progress.add_task(description, total=total)
            return lambda: progress.advance(task)

        yield start


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def measure_mode(states: list[dict[str, torch.Tensor]], measure: Callable[[dict[str, torch.Tensor]], Any],
                 num_points: int, advance: Callable[[], None]) -> dict[str, Any]:
    """Endpoints, every pair's curve and barriers, and the K-model fusion of one mode."""
    from fedtna.fusion.interpolation import curve_barrier, fuse, interpolation_curve

    endpoints = [measure(state) for state in states]
    pairs: list[dict[str, Any]] = []
    for first, second in itertools.combinations(range(len(states)), 2):
        curve = interpolation_curve(measure, states[first], states[second], num_points, on_point=advance)
        barrier = curve_barrier(curve)
        pairs.append({"pair": [first, second], "alphas": curve.alphas, "accuracy": curve.accuracies,
                      "loss": curve.losses, "accuracy_barrier": barrier.accuracy,
                      "accuracy_barrier_relative": barrier.accuracy_relative,
                      "accuracy_barrier_alpha": barrier.accuracy_alpha, "loss_barrier": barrier.loss,
                      "loss_barrier_alpha": barrier.loss_alpha})
    fusion = fuse(measure, states, endpoints)
    advance()
    summary = {
        "endpoint_accuracy_mean": _mean([point.accuracy for point in endpoints]),
        "endpoint_loss_mean": _mean([point.loss for point in endpoints]),
        "accuracy_barrier_mean": _mean([pair["accuracy_barrier"] for pair in pairs]),
        "accuracy_barrier_relative_mean": _mean([pair["accuracy_barrier_relative"] for pair in pairs]),
        "loss_barrier_mean": _mean([pair["loss_barrier"] for pair in pairs]),
    }
    return {
        "endpoints": [{"model": k, "accuracy": point.accuracy, "loss": point.loss}
                      for k, point in enumerate(endpoints)],
        "pairs": pairs,
        "summary": summary,
        "fusion": asdict(fusion),
    }


def finite_or_none(value: Any) -> Any:
    """NaN/inf (a diverged model) become JSON null, so lmc.json stays strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite_or_none(item) for item in value]
    return value


def run_lmc(config: LmcConfig) -> dict[str, Any]:
    """Check, train, measure and write lmc.json / lmc.png; returns the result."""
    from fedtna.config.checks import check_lmc_config
    from fedtna.config.parse import to_plain
    from fedtna.data import load_dataset
    from fedtna.device import resolve_device
    from fedtna.fusion.interpolation import ModelMeter
    from fedtna.fusion.plot import plot_curves, print_table
    from fedtna.fusion.soups import best_single, greedy_soup, uniform_soup
    from fedtna.fusion.training import (
        MATCHED_MODES,
        MODE_TRAINING,
        data_parts,
        holdout_split,
        resolve_modes,
        total_steps,
        train_models,
    )
    from fedtna.fusion.weight_matching import align_to_first, supports
    from fedtna.masks import derive_seed, validate_scope
    from fedtna.models import build_model

    started = time.perf_counter()
    check_lmc_config(config)
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    device = resolve_device(config.device)
    bundle = load_dataset(config.dataset_spec)

    def build() -> torch.nn.Module:
        return build_model(config.model_spec, bundle.input_shape, bundle.num_classes)

    template = build()
    validate_scope(config.mask_spec.scope, template)
    modes = resolve_modes(config, supports(template))
    parts = data_parts(config, bundle.train_y.numpy())

    bn_order = torch.randperm(len(bundle.train_y), generator=torch.Generator().manual_seed(
        derive_seed(config.seed, "lmc", "bn")))
    bn_inputs = bundle.train_x[bn_order[: config.bn_reset_batches * config.batch_size]]
    measure = ModelMeter(template.to(device), bundle.test_x, bundle.test_y, bn_inputs, config.batch_size,
                         config.eval_batch_size)

    _, held_out = holdout_split(config, len(bundle.train_y))
    held = torch.as_tensor(held_out, dtype=torch.long)
    measure_holdout = ModelMeter(template.to(device), bundle.train_x[held], bundle.train_y[held], bn_inputs,
                                 config.batch_size, config.eval_batch_size) if len(held) else None

    trainings = list(dict.fromkeys(MODE_TRAINING[mode] for mode in modes))
    num_pairs = config.num_models * (config.num_models - 1) // 2
    trained, results = {}, {}
    with progress_bar(config.progress) as start:
        for training in trainings:
            advance = start(f"train {training} ×{config.num_models}", total_steps(config, parts))
            trained[training] = train_models(training, config, build, bundle.train_x, bundle.train_y, parts,
                                             device, on_step=advance)
        for mode in modes:
            states = [model.state for model in trained[MODE_TRAINING[mode]]]
            if mode in MATCHED_MODES:
                states = align_to_first(template, states, seed=config.seed)
            advance = start(f"measure {mode}", num_pairs * config.num_points + 1)
            results[mode] = measure_mode(states, measure, config.num_points, advance)
            results[mode]["anchor_drift"] = max(model.anchor_drift for model in trained[MODE_TRAINING[mode]])
            results[mode]["train_loss"] = [model.train_loss for model in trained[MODE_TRAINING[mode]]]
            if measure_holdout is not None:
                results[mode]["soups"] = {name: asdict(cook(states, measure_holdout, measure)) for name, cook in
                                          (("best_single", best_single), ("uniform", uniform_soup),
                                           ("greedy", greedy_soup))}

    result = finite_or_none({
        "config": to_plain(config),
        "data_part_sizes": [len(part) for part in parts],
        "holdout_size": len(held_out),
        "modes": results,
        "wall_seconds": round(time.perf_counter() - started, 3),
    })
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "lmc.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    plot_curves(result, output_dir / "lmc.png")
    print_table(result)
    return result


def run_and_report(config: LmcConfig) -> float:
    """The ``fedtna.lmc`` entry's work; returns the first mode's mean accuracy barrier for sweepers."""
    result = run_lmc(config)
    print(f"lmc.json and lmc.png written to {config.output_dir}", file=sys.stderr)
    first_mode = next(iter(result["modes"].values()))
    return first_mode["summary"]["accuracy_barrier_mean"]
