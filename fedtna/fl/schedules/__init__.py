"""Client-side local-training schedules, looked up by the name the round plan carries.

A schedule turns (model, round plan, local work) into the list of training phases.
Adding one = one module here with ``@register("name")`` and one strategy YAML naming it
(``schedule: name``); every module of this package is imported on first lookup.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from fedtna.errors import ConfigError
from fedtna.fl.round_plan import RoundPlan
from fedtna.training import Phase


@dataclass(frozen=True)
class LocalWork:
    """How much a client trains this round: epochs over its partition and steps per epoch."""

    local_epochs: int
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole round."""
        return self.local_epochs * self.steps_per_epoch


Schedule = Callable[[nn.Module, RoundPlan, LocalWork], list[Phase]]
_REGISTRY: dict[str, Schedule] = {}


def register(name: str) -> Callable[[Schedule], Schedule]:
    """Decorator: make a schedule available under ``name``."""

    def add(schedule: Schedule) -> Schedule:
        _REGISTRY[name] = schedule
        return schedule

    return add


def unregister(name: str) -> None:
    """Remove a schedule (tests that register a temporary one)."""
    _REGISTRY.pop(name, None)


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
