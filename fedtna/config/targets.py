"""``_target_`` resolution, in one place: only fedtna's own code and the Flower classes fedtna names.

A config names what to build (dataset loader, partition function, model class, strategy,
server optimizer) by a dotted path. Configs travel over the network in deployment
(``cfg-json``), so a path outside :data:`ALLOWED_PREFIXES` is refused before anything is
imported; the arguments are bound to the callable's signature before it is called, so a
wrong key is one clear line, not a traceback from inside the callable.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fedtna.errors import ConfigError

ALLOWED_PREFIXES = ("fedtna.", "flwr.serverapp.strategy.")
MISSING_VALUE = "???"
# Keys of a group node that describe it rather than being arguments of its target.
DESCRIPTIVE_KEYS = ("name", "_target_")


def allowed_prefixes(trusted_packages: Sequence[str] = ()) -> tuple[str, ...]:
    """fedtna, Flower's strategies, and the packages a user trusts explicitly (``trusted_packages``)."""
    return ALLOWED_PREFIXES + tuple(f"{package.rstrip('.')}." for package in trusted_packages)


def resolve_target(path: Any, key: str, trusted_packages: Sequence[str] = ()) -> Callable[..., Any]:
    """The callable named by ``path``; refuses anything outside fedtna, Flower's strategies and trusted packages."""
    if not isinstance(path, str) or "." not in path:
        raise ConfigError(f"{key}={path!r} must be a dotted path like 'fedtna.data.partition.iid'")
    allowed = allowed_prefixes(trusted_packages)
    if not path.startswith(allowed):
        raise ConfigError(f"{key}={path!r} is not allowed: targets must lie in {list(allowed)} "
                          "(name your own package in trusted_packages to use it)")
    module_name, attribute = path.rsplit(".", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"{key}={path!r}: cannot import module {module_name!r} ({error})") from None
    target = getattr(module, attribute, None)
    if not callable(target):
        raise ConfigError(f"{key}={path!r}: module {module_name!r} has no callable {attribute!r}")
    return target


def bind_arguments(target: Callable[..., Any], arguments: Mapping[str, Any], key: str) -> None:
    """Raise one ConfigError line when ``arguments`` do not fit ``target``'s signature."""
    try:
        inspect.signature(target).bind(**arguments)
    except TypeError as error:
        raise ConfigError(f"{key} does not fit {target.__module__}.{target.__qualname__}: {error}") from None


@dataclass(frozen=True)
class TargetSpec:
    """A group node (dataset, partition, model): its name, ``_target_`` and keyword arguments."""

    role: str
    name: str
    target: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    trusted_packages: tuple[str, ...] = ()

    @classmethod
    def of(cls, role: str, node: Mapping[str, Any], trusted_packages: Sequence[str] = ()) -> TargetSpec:
        """Split a group node into target and arguments; a ``???`` left in it is one clear line."""
        for key, value in node.items():
            if isinstance(value, str) and value == MISSING_VALUE:
                raise ConfigError(f"{role}.{key} is required but was left as '???'; set it in the config "
                                  "or on the command line")
        if "_target_" not in node:
            raise ConfigError(f"{role} config has no _target_ key (keys: {sorted(node)})")
        arguments = {key: value for key, value in node.items()
                     if key not in DESCRIPTIVE_KEYS and not (key.startswith("_") and key.endswith("_"))}
        return cls(role=role, name=str(node.get("name", role)), target=str(node["_target_"]), arguments=arguments,
                   trusted_packages=tuple(trusted_packages))

    @classmethod
    def coerce(cls, role: str, spec: TargetSpec | Mapping[str, Any]) -> TargetSpec:
        """A spec as is, or one built from a plain or OmegaConf mapping (library callers, tests)."""
        if isinstance(spec, TargetSpec):
            return spec
        from omegaconf import DictConfig, OmegaConf

        if isinstance(spec, DictConfig):
            spec = OmegaConf.to_container(spec, resolve=True)  # type: ignore[assignment]  # a DictConfig gives a dict
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{role} config must be a mapping with a _target_ key, got {type(spec).__name__}")
        return cls.of(role, spec)

    def resolve(self) -> Callable[..., Any]:
        """The allowed callable this spec names."""
        return resolve_target(self.target, f"{self.role}._target_", self.trusted_packages)

    def call(self, **runtime: Any) -> Any:
        """Call the target with the configured arguments plus ``runtime`` values, checked first."""
        target = self.resolve()
        arguments = {**self.arguments, **runtime}
        bind_arguments(target, arguments, f"{self.role} config")
        return target(**arguments)


@dataclass(frozen=True)
class StrategySpec:
    """The strategy node: class, server optimizer with its options, and the class's own arguments."""

    name: str
    target: str
    server: str
    server_options: Mapping[str, Any]
    arguments: Mapping[str, Any]
    trusted_packages: tuple[str, ...] = ()

    @classmethod
    def of(cls, node: Mapping[str, Any], trusted_packages: Sequence[str] = ()) -> StrategySpec:
        """Split the strategy node; everything but name/_target_/server/server_options is an argument."""
        spec = TargetSpec.of("strategy", node, trusted_packages)
        arguments = dict(spec.arguments)
        server = str(arguments.pop("server", "fedavg"))
        server_options = dict(arguments.pop("server_options", None) or {})
        return cls(name=spec.name, target=spec.target, server=server, server_options=server_options,
                   arguments=arguments, trusted_packages=tuple(trusted_packages))
