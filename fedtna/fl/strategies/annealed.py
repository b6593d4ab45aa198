"""FedPFN with an annealed anchor ratio: many anchors early, few (or none) late.

The paper fixes one ratio rho for the whole run. Anchors matter most early, while client
models can still settle into different permutations; late in training they only cost
capacity. Here the round's ratio goes from ``mask_ratio`` in round 1 to ``final_ratio`` in
the last round, linearly or along a half cosine; everything else is FedPFN (round seed,
exact anchors, checksums). The ratio travels in the round plan, so clients need nothing new.
"""

from __future__ import annotations

import math
from dataclasses import replace

from fedtna.errors import out_of_range
from fedtna.fl.round_plan import RoundPlan
from fedtna.fl.strategies.fedpfn import FedPFN

ANNEAL_SHAPES = ("linear", "cosine")


def annealed_ratio(first: float, final: float, server_round: int, num_rounds: int, shape: str) -> float:
    """The anchor ratio of ``server_round`` (1-based): ``first`` in round 1, ``final`` in round ``num_rounds``."""
    progress = (server_round - 1) / (num_rounds - 1) if num_rounds > 1 else 1.0
    progress = min(max(progress, 0.0), 1.0)
    weight = 1.0 - progress if shape == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return final + (first - final) * weight


class AnnealedFedPFN(FedPFN):
    """FedPFN whose anchor ratio moves from ``mask_ratio`` (round 1) to ``final_ratio`` (last round).

    Args:
        num_rounds: the run's rounds (the schedule's length).
        anneal: ``linear`` or ``cosine`` (half cosine: slow at both ends).
        final_ratio: the ratio of the last round, in [0, 1).
    """

    def __init__(self, *, num_rounds: int, anneal: str, final_ratio: float, **options: object) -> None:
        if anneal not in ANNEAL_SHAPES:
            raise out_of_range("strategy.anneal", anneal, f"one of {list(ANNEAL_SHAPES)}")
        if not 0.0 <= final_ratio < 1.0:
            raise out_of_range("strategy.final_ratio", final_ratio, "[0, 1)")
        super().__init__(**options)  # type: ignore[arg-type]  # pass-through kwargs
        self.num_rounds = num_rounds
        self.anneal = anneal
        self.final_ratio = float(final_ratio)

    def round_plan(self, server_round: int) -> RoundPlan:
        """FedPFN's plan with this round's ratio."""
        plan = super().round_plan(server_round)
        assert plan.mask is not None
        ratio = annealed_ratio(self.mask.ratio, self.final_ratio, server_round, self.num_rounds, self.anneal)
        return replace(plan, mask=replace(plan.mask, spec=replace(plan.mask.spec, ratio=ratio)))
