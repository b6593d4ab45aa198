"""FedProx: FedAvg whose clients add mu/2 * ||w - w_global||^2 to their loss."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedtna.errors import ConfigError
from fedtna.strategies.base import SeededStrategy


class FedProx(SeededStrategy):
    """Li et al. 2020; the server sends ``proximal-mu`` (mu = 0 is exactly FedAvg)."""

    schedule = "full"

    @classmethod
    def check_config(cls, run_config: Mapping[str, Any]) -> None:
        """FedProx needs its mu in the strategy config."""
        if "proximal_mu" not in run_config["strategy"]:
            raise ConfigError("strategy.proximal_mu is missing: FedProx needs mu >= 0")
        super().check_config(run_config)
