"""The typed config of fedtna: schema, parsing, range checks, ``_target_`` resolution, Hydra entry."""

from fedtna.config.parse import parse_lmc_config, parse_run_config, to_plain
from fedtna.config.schema import LmcConfig, RunConfig

__all__ = ["LmcConfig", "RunConfig", "parse_lmc_config", "parse_run_config", "to_plain"]
