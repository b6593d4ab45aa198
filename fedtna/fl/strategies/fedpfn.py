"""FedPFN: clients train only the weights the round's seeded mask leaves free."""

from __future__ import annotations

from dataclasses import replace

from fedtna.fl.round_plan import MaskPlan, RoundPlan
from fedtna.fl.strategies.base import SeededStrategy
from fedtna.masks import MaskSpec, derive_seed


class FedPFN(SeededStrategy):
    """Partially fixed neurons (arXiv 2402.01342): a fraction ``mask.ratio`` of weights are the round's anchors.

    Args:
        mask: ratio, granularity and scope of the round masks.
        mask_per_round: a fresh mask each round (True) or one mask for the whole run.
    """

    default_schedule = "pfn"

    def __init__(self, *, mask: MaskSpec, mask_per_round: bool, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]  # pass-through kwargs
        self.mask = mask
        self.mask_per_round = mask_per_round

    def mask_seed(self, server_round: int) -> int:
        """A fresh mask each round, or one for the whole run."""
        return derive_seed(self.seed, "mask", server_round if self.mask_per_round else 0)

    def round_plan(self, server_round: int) -> RoundPlan:
        """Add the mask's seed and spec; the mask itself never travels."""
        plan = super().round_plan(server_round)
        return replace(plan, mask=MaskPlan(seed=self.mask_seed(server_round), spec=self.mask))
