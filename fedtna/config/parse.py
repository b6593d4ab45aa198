"""Turn a composed Hydra config (or its JSON in deployment) into the typed tree, once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException, ValidationError

from fedtna.config.schema import LmcConfig, RunConfig
from fedtna.errors import ConfigError

ConfigT = TypeVar("ConfigT", RunConfig, LmcConfig)


def _typed(schema: type[ConfigT], source: Mapping[str, Any] | DictConfig) -> ConfigT:
    try:
        plain = OmegaConf.to_container(source, resolve=True) if isinstance(source, DictConfig) else dict(source)
        merged = OmegaConf.merge(OmegaConf.structured(schema), plain)
        return cast(ConfigT, OmegaConf.to_object(merged))  # a structured config gives the schema's instance
    except MissingMandatoryValue as error:
        raise ConfigError(f"{error.full_key} is required but missing (or left as '???'); set it in the config "
                          "or on the command line") from None
    except ConfigKeyError as error:
        raise ConfigError(f"{error.full_key} is not a key of the {schema.__name__} config; check its spelling") \
            from None
    except ValidationError as error:
        expected = str(error).splitlines()[0].rsplit(" to ", 1)[-1]
        raise ConfigError(f"{error.full_key}={error.value!r} has the wrong type: expected {expected}") from None
    except OmegaConfBaseException as error:
        raise ConfigError(f"the config cannot be resolved: {str(error).splitlines()[0]}") from None


def parse_run_config(source: Mapping[str, Any] | DictConfig) -> RunConfig:
    """The typed config of a federated run; no range checks (see ``fedtna.config.checks``)."""
    return _typed(RunConfig, source)


def parse_lmc_config(source: Mapping[str, Any] | DictConfig) -> LmcConfig:
    """The typed config of a fusion run."""
    return _typed(LmcConfig, source)


def to_plain(config: RunConfig | LmcConfig) -> dict[str, Any]:
    """The config as plain JSON-able containers: what config.json holds and ``cfg-json`` carries."""
    return cast(dict[str, Any], OmegaConf.to_container(OmegaConf.structured(config), resolve=True))
