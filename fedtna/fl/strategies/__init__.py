"""Server strategies: one module each, chosen by ``_target_`` in conf/strategy/*.yaml."""

from __future__ import annotations

from typing import Any

from flwr.serverapp.strategy import FedAvg as FlowerFedAvg

from fedtna.config.schema import RunConfig
from fedtna.config.targets import StrategySpec
from fedtna.errors import ConfigError
from fedtna.fl.strategies.base import SeededStrategy
from fedtna.fl.strategies.compose import compose, constructor_parameters


def strategy_class(spec: StrategySpec) -> type[SeededStrategy]:
    """The configured strategy class with its server optimizer composed in."""
    from fedtna.config.targets import resolve_target

    base = resolve_target(spec.target, "strategy._target_", spec.trusted_packages)
    if not (isinstance(base, type) and issubclass(base, SeededStrategy)):
        raise ConfigError(f"strategy._target_={spec.target!r} is not a fedtna SeededStrategy")
    return compose(base, spec.server, spec.trusted_packages)


def run_arguments(config: RunConfig) -> dict[str, Any]:
    """Run-level values a strategy may ask for by naming them in its constructor."""
    return {
        "seed": config.seed,
        "num_rounds": config.num_rounds,
        "mask": config.mask_spec,
        "mask_per_round": config.mask.per_round,
        "fraction_train": config.fraction_train,
        "fraction_evaluate": config.fraction_evaluate,
        "min_available_nodes": config.num_clients,
        "min_clients_fraction": config.min_clients_fraction,
    }


def build_strategy(config: RunConfig) -> SeededStrategy:
    """Instantiate the strategy: run values it names, its YAML arguments, server-optimizer options."""
    spec = config.strategy_spec
    klass = strategy_class(spec)
    accepted = constructor_parameters(klass)
    arguments = {key: value for key, value in run_arguments(config).items() if key in accepted}
    arguments.update(spec.arguments)
    arguments.update(spec.server_options)
    unknown = sorted(set(arguments) - accepted)
    if unknown:
        own = sorted(accepted - constructor_parameters(FlowerFedAvg))
        raise ConfigError(f"strategy keys {unknown} are not arguments of {klass.__name__}; its own arguments are "
                          f"{own} (and Flower FedAvg's)")
    try:
        return klass(**arguments)
    except TypeError as error:
        raise ConfigError(f"strategy config does not fit {klass.__name__}: {error}") from None
