"""FedPNU: clients train under the round mask first, then under its complement."""

from __future__ import annotations

from dataclasses import replace

from fedtna.errors import ConfigError
from fedtna.fl.round_plan import RoundPlan
from fedtna.fl.schedules.pnu import PNU_SPLITS, SPLIT_OPTION
from fedtna.fl.strategies.fedpfn import FedPFN
from fedtna.masks import FixedMasks, complement


class FedPNU(FedPFN):
    """Progressive neuron updating: every weight is updated within a round.

    Args:
        pnu_split: ``epoch`` (int(E/2) epochs masked, the rest complement), ``step`` (half the steps each)
            or ``auto`` (``epoch`` for E >= 2, ``step`` for E = 1; the client resolves it, knowing E).

    Anchors are not restored at aggregation: the complement phase trains them. Clients report the
    checksum of the masks of the phases that ran, so both masks are accepted (``phase_masks``).
    """

    default_schedule = "pnu"

    def __init__(self, *, pnu_split: str, **options: object) -> None:
        if pnu_split not in PNU_SPLITS:
            raise ConfigError(f"strategy.pnu_split={pnu_split!r} is not one of {list(PNU_SPLITS)}")
        super().__init__(**options)  # type: ignore[arg-type]  # pass-through kwargs
        self.pnu_split = pnu_split

    def round_plan(self, server_round: int) -> RoundPlan:
        """Add how the local work splits between mask and complement."""
        plan = super().round_plan(server_round)
        return replace(plan, schedule_options={**plan.schedule_options, SPLIT_OPTION: self.pnu_split})

    def fixes_anchors(self) -> bool:
        """Nothing is fixed over the whole round under FedPNU."""
        return False

    def phase_masks(self) -> list[FixedMasks]:
        """The round mask, then its complement."""
        return [self.round_masks, complement(self.round_masks)] if self.round_masks is not None else []
