"""FedPNU: clients train under the round mask first, then under its complement."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedtna.errors import ConfigError
from fedtna.schedules.pnu import PNU_SPLITS
from fedtna.strategies.fedpfn import FedPFN


class FedPNU(FedPFN):
    """Progressive neuron updating: every weight is updated within a round.

    Anchors are not restored at aggregation: the complement phase trains them.
    """

    schedule = "pnu"

    @classmethod
    def check_config(cls, run_config: Mapping[str, Any]) -> None:
        """``pnu_split`` must be a known split."""
        split = run_config["strategy"].get("pnu_split", "epoch")
        if split not in PNU_SPLITS:
            raise ConfigError(f"strategy.pnu_split={split!r} is not one of {list(PNU_SPLITS)}")
        super().check_config(run_config)

    def round_config(self, server_round: int) -> dict[str, Any]:
        """Add how the local work splits between mask and complement."""
        config = super().round_config(server_round)
        config["pnu-split"] = str(self.strategy_options.get("pnu_split", "epoch"))
        return config

    def _restore_anchors(self, averaged: dict) -> None:
        """Nothing is fixed over the whole round under FedPNU."""

