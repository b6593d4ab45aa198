"""The one Hydra entry helper behind ``fedtna.run`` and ``fedtna.lmc`` (and their console scripts)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from fedtna.config.parse import parse_run_config
from fedtna.config.schema import RunConfig
from fedtna.errors import FedtnaError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
ConfigT = TypeVar("ConfigT")

USAGE_ERROR_EXIT = 2


def hydra_entry(config_name: str, parse: Callable[[DictConfig], ConfigT],
                work: Callable[[ConfigT], Any]) -> Callable[[], Any]:
    """A ``main()`` that composes ``conf/<config_name>.yaml``, parses it typed and runs ``work``.

    A FedtnaError becomes one ``error: ...`` line: exit code 2 for bad input or missing data,
    3 for a run that failed after it started (``RunFailedError``).
    """
    import hydra
    from hydra.core.hydra_config import HydraConfig

    @hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")
    def main(cfg: DictConfig) -> Any:
        try:
            cfg = cfg.copy()
            OmegaConf.set_struct(cfg, False)
            cfg.output_dir = HydraConfig.get().runtime.output_dir
            config = parse(cfg)
            if getattr(config, "print_config", False):
                print(OmegaConf.to_yaml(cfg, resolve=True), file=sys.stderr)
            return work(config)
        except FedtnaError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(getattr(error, "exit_code", USAGE_ERROR_EXIT))

    return main


def compose_config(config_name: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with overrides outside a Hydra app (deployment, tests)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


def compose_run_config(overrides: list[str] | tuple[str, ...], output_dir: str | Path) -> RunConfig:
    """The typed config ``python -m fedtna.run <overrides>`` would run, writing to ``output_dir``."""
    cfg = compose_config("config", overrides)
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = str(output_dir)
    return parse_run_config(cfg)
