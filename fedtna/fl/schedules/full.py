"""Plain local training: every weight trains for E epochs (FedAvg, FedProx)."""

from __future__ import annotations

from torch import nn

from fedtna.fl.round_plan import RoundPlan
from fedtna.fl.schedules import LocalWork, register
from fedtna.training import Phase


@register("full")
def full_schedule(model: nn.Module, plan: RoundPlan, work: LocalWork) -> list[Phase]:
    """One unmasked phase of ``local_epochs`` epochs."""
    return [Phase(fixed_masks=None, num_steps=work.total_steps)]
