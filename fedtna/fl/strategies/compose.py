"""Put a Flower server optimizer (FedAvgM, FedAdam, ...) on top of a fedtna strategy.

The composed class inherits from both, e.g. ``(FedAdam, FedPFN)``: Python's method
order then runs FedAdam's server update around fedtna's seeded configure/aggregate
(FedAdam -> FedOpt -> FedPFN -> SeededStrategy -> FedAvg), so no strategy is copied.

Flower's constructors pass only their own arguments up the chain, so a small shim
placed right after the optimizer in the method order hands the fedtna strategy its
typed arguments. After the server update the anchors are restored once more, so a
server optimizer's momentum never moves a weight the round fixed.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp import strategy as flower_strategies
from flwr.serverapp.strategy import FedAvg

from fedtna.config.targets import resolve_target
from fedtna.errors import ConfigError
from fedtna.fl.strategies.base import SeededStrategy, as_array_record

SERVER_OPTIMIZERS: dict[str, type[FedAvg] | None] = {
    "fedavg": None,
    "fedavgm": flower_strategies.FedAvgM,
    "fedadam": flower_strategies.FedAdam,
    "fedyogi": flower_strategies.FedYogi,
    "fedadagrad": flower_strategies.FedAdagrad,
}


def server_optimizer_class(name: str, trusted_packages: tuple[str, ...] = ()) -> type[FedAvg] | None:
    """A short name from SERVER_OPTIMIZERS or a dotted path to a Flower FedAvg subclass."""
    if name in SERVER_OPTIMIZERS:
        return SERVER_OPTIMIZERS[name]
    if "." in name:
        optimizer = resolve_target(name, "strategy.server", trusted_packages)
        if isinstance(optimizer, type) and issubclass(optimizer, flower_strategies.FedAvg):
            return optimizer
        raise ConfigError(f"strategy.server={name!r} must be a Flower FedAvg subclass")
    raise ConfigError(f"strategy.server={name!r} is not one of {sorted(SERVER_OPTIMIZERS)} (or a dotted class path)")


def _flower_parameters(optimizer: type[FedAvg]) -> set[str]:
    return set(inspect.signature(optimizer.__init__).parameters) - {"self"}


class _HandOver:
    """Gives the fedtna strategy the typed arguments the Flower optimizer did not pass on."""

    _pending_fedtna_arguments: dict[str, Any]

    def __init__(self, **flower_arguments: Any) -> None:
        super().__init__(**flower_arguments, **self._pending_fedtna_arguments)


class _AnchorsAfterServerUpdate:
    """Restores the round's anchors, and the arrays' dtypes, after the server optimizer's update.

    A mixin: only in a class built by ``compose`` do ``super()`` and ``self`` have the Flower
    optimizer's and the SeededStrategy's members, which the type checker cannot see here.
    """

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        arrays, metrics = super().aggregate_train(server_round, replies)  # type: ignore[misc]  # mixin, see docstring
        if arrays is None:
            return arrays, metrics
        previous = self.previous_arrays  # type: ignore[attr-defined]  # mixin, see docstring
        # Flower's server update multiplies by float64 scalars; keep the model's own dtypes
        updated = {key: array.numpy().astype(previous[key].numpy().dtype, copy=False) for key, array in arrays.items()}
        record = as_array_record(self.restore_anchors(updated))  # type: ignore[attr-defined]  # mixin, see docstring
        if isinstance(getattr(self, "current_arrays", None), ArrayRecord):
            self.current_arrays = record  # FedAvgM steps from the global model the clients will receive
        return record, metrics


def compose(strategy_class: type[SeededStrategy], server: str,
            trusted_packages: tuple[str, ...] = ()) -> type[SeededStrategy]:
    """The strategy class with the named server optimizer layered on top."""
    optimizer = server_optimizer_class(server, trusted_packages)
    if optimizer is None:
        return strategy_class
    flower_parameters = _flower_parameters(optimizer)

    def __init__(self: Any, **arguments: Any) -> None:
        self._pending_fedtna_arguments = {k: v for k, v in arguments.items() if k not in flower_parameters}
        optimizer.__init__(self, **{k: v for k, v in arguments.items() if k in flower_parameters})
        del self._pending_fedtna_arguments

    name = f"{strategy_class.__name__}+{optimizer.__name__}"
    bases = (_AnchorsAfterServerUpdate, optimizer, _HandOver, strategy_class)
    return type(name, bases, {"__init__": __init__, "__module__": __name__})


def constructor_parameters(strategy_class: type) -> set[str]:
    """Keyword arguments a (composed) strategy class accepts: its own, its bases', Flower's."""
    names: set[str] = set()
    for klass in strategy_class.__mro__:
        if "__init__" in vars(klass):
            names |= {name for name, parameter in inspect.signature(vars(klass)["__init__"]).parameters.items()
                      if name != "self" and parameter.kind in (inspect.Parameter.KEYWORD_ONLY,
                                                               inspect.Parameter.POSITIONAL_OR_KEYWORD)}
    return names
