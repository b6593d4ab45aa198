"""Client-side local-training schedules, looked up by the name the server sends.

A schedule turns (model, round config, run config, steps per epoch) into the list
of training phases. Adding one = one module here with ``@register("name")`` and
one strategy YAML; every module of this package is imported on first lookup.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping

from torch import nn

from fedtna.errors import ConfigError
from fedtna.training import Phase

Schedule = Callable[[nn.Module, Mapping, Mapping, int], list[Phase]]
_REGISTRY: dict[str, Schedule] = {}


def register(name: str) -> Callable[[Schedule], Schedule]:
    """Decorator: make a schedule available under ``name``."""

    def add(schedule: Schedule) -> Schedule:
        _REGISTRY[name] = schedule
        return schedule

    return add


def _import_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def get_schedule(name: str) -> Schedule:
    """The schedule registered under ``name``; a clear error lists the known ones."""
    if name not in _REGISTRY:
        _import_all()
    if name not in _REGISTRY:
        raise ConfigError(f"schedule={name!r} is unknown; known schedules: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def available_schedules() -> list[str]:
    """Names of every registered schedule."""
    _import_all()
    return sorted(_REGISTRY)
