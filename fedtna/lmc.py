"""``python -m fedtna.lmc``: train K models per mode, interpolate every pair, fuse, plot.

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

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fedtna.errors import ConfigError, FedtnaError


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
    from fedtna.fusion import curve_barrier, fuse, interpolation_curve

    endpoints = [measure(state) for state in states]
    pairs = []
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
        "endpoints": [{"model": k, "accuracy": point.accuracy, "loss": point.loss} for k, point in enumerate(endpoints)],
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


def run_lmc(run_config: dict[str, Any]) -> dict[str, Any]:
    """Validate, train, measure and write lmc.json / lmc.png; returns the result."""
    from fedtna.data import load_dataset
    from fedtna.device import resolve_device
    from fedtna.fusion import ModelMeter
    from fedtna.lmc_plot import plot_curves, print_table
    from fedtna.lmc_training import (MATCHED_MODES, MODE_TRAINING, data_parts, resolve_modes, settings_from,
                                     total_steps, train_models)
    from fedtna.masks import derive_seed, validate_scope
    from fedtna.models import build_model
    from fedtna.weight_matching import align_to_first, supports

    started = time.perf_counter()
    settings = settings_from(run_config)
    num_threads = run_config.get("num_threads")
    if num_threads is not None:
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise ConfigError(f"num_threads={num_threads!r} is outside the allowed range integers >= 1 (or null)")
        torch.set_num_threads(num_threads)
    device = resolve_device(str(run_config.get("device", "auto")))
    bundle = load_dataset(run_config["dataset"])

    def build() -> torch.nn.Module:
        return build_model(run_config["model"], bundle.input_shape, bundle.num_classes)

    template = build()
    validate_scope(list(settings.scope) if settings.scope is not None else None, template)
    modes = resolve_modes(settings, str(run_config["model"].get("name")), supports(template))
    parts = data_parts(settings, run_config["partition"], bundle.train_y.numpy())

    bn_order = torch.randperm(len(bundle.train_y), generator=torch.Generator().manual_seed(
        derive_seed(settings.seed, "lmc", "bn")))
    bn_inputs = bundle.train_x[bn_order[: settings.bn_reset_batches * settings.batch_size]]
    measure = ModelMeter(template.to(device), bundle.test_x, bundle.test_y, bn_inputs, settings.batch_size,
                         settings.eval_batch_size)

    trainings = list(dict.fromkeys(MODE_TRAINING[mode] for mode in modes))
    num_pairs = settings.num_models * (settings.num_models - 1) // 2
    trained, results = {}, {}
    with progress_bar(bool(run_config.get("progress", True))) as start:
        for training in trainings:
            advance = start(f"train {training} ×{settings.num_models}", total_steps(settings, parts))
            trained[training] = train_models(training, settings, build, bundle.train_x, bundle.train_y, parts,
                                             device, on_step=advance)
        for mode in modes:
            states = [model.state for model in trained[MODE_TRAINING[mode]]]
            if mode in MATCHED_MODES:
                states = align_to_first(template, states, seed=settings.seed)
            advance = start(f"measure {mode}", num_pairs * settings.num_points + 1)
            results[mode] = measure_mode(states, measure, settings.num_points, advance)
            results[mode]["anchor_drift"] = max(model.anchor_drift for model in trained[MODE_TRAINING[mode]])
            results[mode]["train_loss"] = [model.train_loss for model in trained[MODE_TRAINING[mode]]]

    result = finite_or_none({
        "config": run_config,
        "data_part_sizes": [len(part) for part in parts],
        "modes": results,
        "wall_seconds": round(time.perf_counter() - started, 3),
    })
    output_dir = Path(run_config["output_dir"])
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "lmc.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    plot_curves(result, output_dir / "lmc.png")
    print_table(result)
    return result


@hydra.main(config_path="../conf", config_name="lmc", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the vanilla (or first mode's) accuracy barrier for sweepers."""
    try:
        run_config = OmegaConf.to_container(cfg, resolve=True)
        run_config["output_dir"] = HydraConfig.get().runtime.output_dir
        if cfg.get("print_config", False):
            print(OmegaConf.to_yaml(cfg, resolve=True), file=sys.stderr)
        result = run_lmc(run_config)
    except FedtnaError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"lmc.json and lmc.png written to {run_config['output_dir']}", file=sys.stderr)
    first_mode = next(iter(result["modes"].values()))
    return first_mode["summary"]["accuracy_barrier_mean"]


if __name__ == "__main__":
    main()
