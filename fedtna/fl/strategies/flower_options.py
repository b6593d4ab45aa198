"""Which Flower ``FedAvg`` options a fedtna strategy honours, and a one-line refusal of the others.

SeededStrategy overrides every hook that reads them, so an option it does not honour would
silently do nothing (or break the clients). Honoured: ``fraction_train``, ``fraction_evaluate``
(seeded samples) and ``min_available_nodes`` (checked against the partitions in ``attach``).
The others are accepted only at Flower's default value.
"""

from __future__ import annotations

from collections.abc import Mapping

from fedtna.errors import ConfigError
from fedtna.fl.client_report import NUM_EXAMPLES

HONOURED = ("fraction_train", "fraction_evaluate", "min_available_nodes")
# option -> (the only value fedtna supports: Flower's default, what fedtna does instead)
FIXED: dict[str, tuple[object, str]] = {
    "min_train_nodes": (2, "fedtna samples fraction_train of the clients (at least one); "
                           "require valid updates with min_clients_fraction"),
    "min_evaluate_nodes": (2, "fedtna samples fraction_evaluate of the clients (at least one)"),
    "weighted_by_key": (NUM_EXAMPLES, f"fedtna weights updates by the clients' {NUM_EXAMPLES!r}"),
    "arrayrecord_key": ("arrays", "fedtna's ClientApp reads and replies the model as 'arrays'"),
    "configrecord_key": ("config", "fedtna's ClientApp reads its round plan from 'config'"),
    "train_metrics_aggr_fn": (None, "fedtna aggregates client metrics itself (example-weighted means)"),
    "evaluate_metrics_aggr_fn": (None, "fedtna aggregates client metrics itself (example-weighted means)"),
}


def check_flower_options(options: Mapping[str, object]) -> None:
    """A one-line ConfigError for a Flower option fedtna would not honour."""
    for name, value in options.items():
        if name in FIXED and value != FIXED[name][0]:
            supported, instead = FIXED[name]
            raise ConfigError(f"strategy option {name}={value!r} is not supported by fedtna (only {supported!r}): "
                              f"{instead}; honoured Flower options: {', '.join(HONOURED)}")
