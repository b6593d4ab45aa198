"""FedPFN: train only the round mask's trainable weights for E epochs."""

from __future__ import annotations

from torch import nn

from fedtna.errors import ConfigError
from fedtna.fl.round_plan import RoundPlan, plan_masks
from fedtna.fl.schedules import LocalWork, register
from fedtna.training import Phase


@register("pfn")
def pfn_schedule(model: nn.Module, plan: RoundPlan, work: LocalWork) -> list[Phase]:
    """One phase of ``local_epochs`` epochs with the round's anchors fixed."""
    masks = plan_masks(plan, model.named_parameters())
    if masks is None:
        raise ConfigError("schedule 'pfn' needs a round plan with a mask; use it with a masked strategy (FedPFN)")
    return [Phase(fixed_masks=masks, num_steps=work.total_steps)]
