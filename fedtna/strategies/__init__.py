"""Server strategies: one module each, chosen by ``_target_`` in conf/strategy/*.yaml."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.utils import get_class

from fedtna.errors import ConfigError
from fedtna.strategies.base import SeededStrategy
from fedtna.strategies.compose import compose


def strategy_class(run_config: Mapping[str, Any]) -> type[SeededStrategy]:
    """The configured strategy class with its server optimizer composed in."""
    target = run_config["strategy"]["_target_"]
    try:
        base = get_class(target)
    except Exception as error:  # hydra wraps import errors in several types
        raise ConfigError(f"strategy._target_={target!r} cannot be imported: {error}") from None
    if not issubclass(base, SeededStrategy):
        raise ConfigError(f"strategy._target_={target!r} is not a fedtna SeededStrategy")
    return compose(base, str(run_config["strategy"].get("server", "fedavg")))


def build_strategy(run_config: Mapping[str, Any]) -> SeededStrategy:
    """Instantiate the strategy with Flower's sampling keys and server-optimizer options."""
    options = dict(run_config["strategy"].get("server_options") or {})
    return strategy_class(run_config)(
        fraction_train=float(run_config["fraction_train"]),
        fraction_evaluate=float(run_config.get("fraction_evaluate", 0.0)),
        min_available_nodes=int(run_config["num_clients"]),
        **options,
    )
