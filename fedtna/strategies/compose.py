"""Put a Flower server optimizer (FedAvgM, FedAdam, ...) on top of a fedtna strategy.

The composed class inherits from both, e.g. ``(FedAdam, FedPFN)``: Python's method
order then runs FedAdam's server update around fedtna's seeded configure/aggregate
(FedAdam -> FedOpt -> FedPFN -> SeededStrategy -> FedAvg), so no strategy is copied.
"""

from __future__ import annotations

from flwr.serverapp import strategy as flower_strategies
from hydra.utils import get_class

from fedtna.errors import ConfigError
from fedtna.strategies.base import SeededStrategy

SERVER_OPTIMIZERS: dict[str, type | None] = {
    "fedavg": None,
    "fedavgm": flower_strategies.FedAvgM,
    "fedadam": flower_strategies.FedAdam,
    "fedyogi": flower_strategies.FedYogi,
    "fedadagrad": flower_strategies.FedAdagrad,
}


def server_optimizer_class(name: str) -> type | None:
    """A short name from SERVER_OPTIMIZERS or a dotted path to a Flower FedAvg subclass."""
    if name in SERVER_OPTIMIZERS:
        return SERVER_OPTIMIZERS[name]
    if "." in name:
        return get_class(name)
    raise ConfigError(f"strategy.server={name!r} is not one of {sorted(SERVER_OPTIMIZERS)} (or a dotted class path)")


def compose(strategy_class: type[SeededStrategy], server: str) -> type[SeededStrategy]:
    """The strategy class with the named server optimizer layered on top."""
    optimizer = server_optimizer_class(server)
    if optimizer is None:
        return strategy_class
    if not issubclass(optimizer, flower_strategies.FedAvg):
        raise ConfigError(f"strategy.server={server!r} must be a Flower FedAvg subclass")
    name = f"{strategy_class.__name__}+{optimizer.__name__}"
    return type(name, (optimizer, strategy_class), {})
