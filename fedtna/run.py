"""``python -m fedtna.run`` (or ``fedtna-run``): one federated experiment, or a Hydra multirun sweep."""

from __future__ import annotations

import json

from fedtna.config import RunConfig, parse_run_config
from fedtna.config.entry import hydra_entry


def run(config: RunConfig) -> float | None:
    """Run one experiment, print its summary; returns the last-5 mean test accuracy for sweepers (Optuna)."""
    from hydra.core.hydra_config import HydraConfig

    from fedtna.fl.experiment import run_experiment
    from fedtna.fl.resume import resolve_resume

    config, finished = resolve_resume(config, list(HydraConfig.get().overrides.task))
    summary = finished if finished is not None else run_experiment(config)
    print(json.dumps(summary))
    return summary.get("last5_mean_test_accuracy")


main = hydra_entry("config", parse_run_config, run)

if __name__ == "__main__":
    main()
