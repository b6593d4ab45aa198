"""The run config of a deployment: composed from Hydra overrides, carried as ``cfg-json`` in a TOML file."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import tomli_w
from hydra.errors import HydraException
from omegaconf import OmegaConf

from fedtna.config import RunConfig, parse_run_config, to_plain
from fedtna.config.entry import compose_config
from fedtna.errors import ConfigError
from fedtna.fl.client_app import RUN_CONFIG_KEY

DEFAULT_OUTPUT_ROOT = "outputs/deploy"


def plain_run_config(config: RunConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The config as plain JSON-able containers (a mapping is taken as it is)."""
    return to_plain(config) if isinstance(config, RunConfig) else dict(config)


def write_run_config_toml(config: RunConfig | Mapping[str, Any], path: str | Path) -> Path:
    """Write ``cfg-json = '<json of config>'`` for ``flwr run --run-config <path>``; returns the path.

    tomli_w escapes quotes, apostrophes and backslashes, so any JSON survives; nested
    mappings and lists survive because they travel as one JSON string.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(plain_run_config(config), sort_keys=True, allow_nan=False)
    path.write_text(tomli_w.dumps({RUN_CONFIG_KEY: text}))
    return path


def read_run_config_toml(path: str | Path) -> dict[str, Any]:
    """The plain config a run-config TOML carries (what the apps receive in ``cfg-json``)."""
    return json.loads(tomllib.loads(Path(path).read_text())[RUN_CONFIG_KEY])


def default_output_dir(strategy_name: str, root: str | Path = DEFAULT_OUTPUT_ROOT) -> Path:
    """``<root>/<date>/<time>_<strategy>`` made absolute against the working directory."""
    now = datetime.now()
    return (Path(root) / f"{now:%Y-%m-%d}" / f"{now:%H-%M-%S}_{strategy_name}").resolve()


def compose_run_config(overrides: Sequence[str] = (), output_dir: str | Path | None = None) -> RunConfig:
    """The typed run config for Hydra ``overrides`` with an absolute ``output_dir``."""
    try:
        cfg = compose_config("config", list(overrides))
    except HydraException as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"the overrides {' '.join(overrides)!r} do not compose: {first_line}") from None
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = str(Path(output_dir).resolve()) if output_dir is not None else ""
    config = parse_run_config(cfg)
    if output_dir is None:
        config = replace(config, output_dir=str(default_output_dir(config.strategy_spec.name)))
    return config
