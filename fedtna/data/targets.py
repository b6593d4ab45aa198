"""Call the function a config names in `_target_`, so new schemes need a YAML, not an if/elif."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from fedtna.errors import ConfigError

MISSING_VALUE = "???"
_MISSING_ADVICE = "is required but was left as '???'; set it in the config or on the command line"


def plain_config(cfg: Mapping[str, Any], role: str) -> dict[str, Any]:
    """Turn a DictConfig or dict into a resolved plain dict, so `???` and `${...}` fail early."""
    if isinstance(cfg, DictConfig):
        try:
            resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        except MissingMandatoryValue as exc:
            raise ConfigError(f"{role}.{exc.key} {_MISSING_ADVICE}") from None
        except OmegaConfBaseException as exc:
            first_line = str(exc).splitlines()[0]
            raise ConfigError(f"{role} config cannot be resolved: {first_line}") from None
        return dict(resolved)  # type: ignore[arg-type]
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{role} config must be a mapping with a _target_ key, got {type(cfg).__name__}")
    plain = dict(cfg)
    for key, value in plain.items():
        if isinstance(value, str) and value == MISSING_VALUE:
            raise ConfigError(f"{role}.{key} {_MISSING_ADVICE}")
    return plain


def resolve_target(path: Any, role: str) -> Callable[..., Any]:
    """Import the callable named by a dotted `_target_` path."""
    if not isinstance(path, str) or "." not in path:
        raise ConfigError(f"{role}._target_={path!r} must be a dotted path like 'fedtna.data.partition.iid'")
    module_name, attribute = path.rsplit(".", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{role}._target_={path!r}: cannot import module {module_name!r} ({exc})") from None
    target = getattr(module, attribute, None)
    if not callable(target):
        raise ConfigError(f"{role}._target_={path!r}: module {module_name!r} has no callable {attribute!r}")
    return target


def _is_hydra_flag(key: str) -> bool:
    """Hydra's own keys such as `_recursive_` or `_convert_` are not arguments."""
    return key.startswith("_") and key.endswith("_")


def call_configured(cfg: Mapping[str, Any], role: str, **runtime_kwargs: Any) -> Any:
    """Call `cfg._target_` with the config's other keys plus runtime values, checking arguments first."""
    arguments = plain_config(cfg, role)
    if "_target_" not in arguments:
        raise ConfigError(f"{role} config has no _target_ key (keys: {sorted(arguments)})")
    target = resolve_target(arguments.pop("_target_"), role)
    arguments = {key: value for key, value in arguments.items() if not _is_hydra_flag(key)}
    arguments.update(runtime_kwargs)
    try:
        inspect.signature(target).bind(**arguments)
    except TypeError as exc:
        raise ConfigError(f"{role} config does not fit {target.__module__}.{target.__name__}: {exc}") from None
    return target(**arguments)
