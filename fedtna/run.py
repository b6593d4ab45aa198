"""``python -m fedtna.run``: compose and validate the config, simulate, write results."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fedtna.errors import FedtnaError


def prepare(run_config: dict[str, Any]) -> None:
    """All checks and data work that must happen before Ray starts."""
    from fedtna.clients.local_data import all_partitions, dataset_bundle
    from fedtna.config import validate_against_data, validate_run_config
    from fedtna.data import plot_label_distribution
    from fedtna.masks import validate_scope
    from fedtna.server_app import initial_model

    validate_run_config(run_config)
    bundle = dataset_bundle(run_config)
    validate_against_data(run_config, len(bundle.train_y), bundle.num_classes)
    partitions = all_partitions(run_config)
    scope = run_config["mask"].get("scope")
    validate_scope(list(scope) if scope is not None else None, initial_model(run_config))
    output_dir = Path(run_config["output_dir"])
    plot_label_distribution(bundle.train_y.numpy(), list(partitions), bundle.num_classes,
                            output_dir / "label_distribution.png")


def run_experiment(run_config: dict[str, Any]) -> dict[str, Any]:
    """Validate, simulate and return the summary of one run."""
    from fedtna.simulation import simulate

    started = time.perf_counter()
    output_dir = Path(run_config["output_dir"])
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.json").write_text(json.dumps(run_config, indent=2, default=str) + "\n")
    prepare(run_config)
    summary = simulate(run_config)
    summary["total_wall_seconds"] = round(time.perf_counter() - started, 3)
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the final accuracy for sweepers."""
    try:
        run_config = OmegaConf.to_container(cfg, resolve=True)
        run_config["output_dir"] = HydraConfig.get().runtime.output_dir
        if cfg.get("print_config", True):
            print(OmegaConf.to_yaml(cfg, resolve=True), file=sys.stderr)
        summary = run_experiment(run_config)
    except FedtnaError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(summary))
    return summary.get("final_test_accuracy")


if __name__ == "__main__":
    main()
