"""The one Hydra entry helper behind ``fedtna.run`` and ``fedtna.lmc`` (and their console scripts)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from fedtna.config.job_dir import register_job_dir_resolver
from fedtna.config.parse import parse_run_config
from fedtna.config.plugins import missing_sweeps_plugin
from fedtna.config.schema import RunConfig
from fedtna.errors import ConfigError, FedtnaError
from fedtna.quick_exit import skip_final_collection

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
ConfigT = TypeVar("ConfigT")

register_job_dir_resolver()  # the configs' hydra.sweep.subdir names each job's folder with it

USAGE_ERROR_EXIT = 2
FLWR_RUN_OUTPUT_ROOT = Path("outputs") / "flwr"


def hydra_entry(config_name: str, parse: Callable[[DictConfig], ConfigT],
                work: Callable[[ConfigT], Any]) -> Callable[[], Any]:
    """A ``main()`` that composes ``conf/<config_name>.yaml``, parses it typed and runs ``work``.

    A FedtnaError becomes one ``error: ...`` line: exit code 2 for bad input or missing data,
    3 for a run that failed after it started (``RunFailedError``). A launcher or sweeper of the
    ``sweeps`` extra that is not installed is refused the same way, before Hydra starts.
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

    def entry() -> Any:
        skip_final_collection()
        missing = missing_sweeps_plugin(sys.argv[1:], CONF_DIR)
        if missing is not None:
            print(f"error: {missing}", file=sys.stderr)
            sys.exit(USAGE_ERROR_EXIT)
        return main()

    return entry


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


def compose_overrides_config(overrides: str, output_root: str | Path = FLWR_RUN_OUTPUT_ROOT) -> RunConfig:
    """The typed config for one string of whitespace-separated Hydra overrides (``flwr run``).

    ``flwr run . --run-config 'overrides="strategy=fedpnu mask_ratio=0.6"'`` hands the apps this
    string. Results go to ``<output_root>/<date>/<time>_<strategy>``, made absolute against the
    working directory. Overrides that do not compose raise one-line :class:`ConfigError`.
    """
    from hydra.errors import HydraException

    words = overrides.split()
    try:
        config = compose_run_config(words, "")
    except HydraException as error:
        lines = str(error).strip().splitlines()
        raise ConfigError(f"the overrides {overrides.strip()!r} do not compose: "
                          f"{lines[0] if lines else type(error).__name__}") from None
    now = datetime.now()
    output_dir = Path(output_root) / f"{now:%Y-%m-%d}" / f"{now:%H-%M-%S}_{config.strategy_spec.name}"
    return replace(config, output_dir=str(output_dir.resolve()))
