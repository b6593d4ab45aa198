"""Engines: where the ClientApp calls of a simulated run execute.

The contract is Flower's Message API: the same ServerApp, strategies and ClientApp run under
every engine; an engine only decides where a ClientApp call runs. Adding an engine = one module
here with a ``@register("name")`` function ``(RunConfig) -> summary``. ``simulation.backend=auto``
picks ``ray`` when ``simulation.ray_address`` is set or the run would spread clients over more than
one GPU, and ``local`` otherwise.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from fedtna.config import RunConfig
from fedtna.errors import ConfigError

Engine = Callable[[RunConfig], dict[str, Any]]
EngineCheck = Callable[[RunConfig], None]
AUTO = "auto"
_REGISTRY: dict[str, Engine] = {}
_CHECKS: dict[str, EngineCheck] = {}


def register(name: str, check: EngineCheck | None = None) -> Callable[[Engine], Engine]:
    """Decorator: make an engine available as ``simulation.backend=<name>``; ``check`` refuses, before any
    work, a run the engine cannot do (one ConfigError line)."""

    def add(engine: Engine) -> Engine:
        _REGISTRY[name] = engine
        if check is not None:
            _CHECKS[name] = check
        return engine

    return add


def available_engines() -> list[str]:
    """Every registered engine name, ``auto`` first."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return [AUTO, *sorted(_REGISTRY)]


def visible_gpus(config: RunConfig) -> int:
    """GPUs the run's clients would use: none when clients ask for no GPU."""
    if config.simulation.client_resources.num_gpus <= 0:
        return 0
    if config.simulation.num_gpus is not None:
        return config.simulation.num_gpus
    import torch

    return torch.cuda.device_count()


def resolve_backend(config: RunConfig) -> str:
    """The engine a run uses: ``simulation.backend``, where ``auto`` means ray for a Ray cluster
    (``simulation.ray_address``) or more than one GPU, and local otherwise."""
    backend = config.simulation.backend
    if backend != AUTO:
        return backend
    return "ray" if config.simulation.ray_address is not None or visible_gpus(config) > 1 else "local"


def check_backend(config: RunConfig) -> None:
    """One clear line for an unknown ``simulation.backend``, before any work."""
    known = available_engines()
    backend = config.simulation.backend
    if backend not in known:
        raise ConfigError(f"simulation.backend={backend!r} is not one of {known}")
    if config.simulation.ray_address is not None and backend not in (AUTO, "ray"):
        raise ConfigError(f"simulation.ray_address={config.simulation.ray_address} needs simulation.backend=ray or "
                          f"auto, got simulation.backend={backend}")
    check = _CHECKS.get(resolve_backend(config))
    if check is not None:
        check(config)


def simulate(config: RunConfig) -> dict[str, Any]:
    """Run the ServerApp and ClientApps on the configured engine; returns the run summary."""
    check_backend(config)
    backend = resolve_backend(config)
    summary = _REGISTRY[backend](config)
    summary["engine"] = backend
    return summary
