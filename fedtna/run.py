"""``python -m fedtna.run`` (or ``fedtna-run``): one federated experiment, or a Hydra multirun sweep."""

from __future__ import annotations

import json

from fedtna.config import RunConfig, parse_run_config
from fedtna.config.entry import hydra_entry


def run(config: RunConfig) -> float | None:
    """Run one experiment, print its summary; returns the final accuracy for sweepers."""
    from fedtna.fl.experiment import run_experiment

    summary = run_experiment(config)
    print(json.dumps(summary))
    return summary.get("final_test_accuracy")


main = hydra_entry("config", parse_run_config, run)

if __name__ == "__main__":
    main()
