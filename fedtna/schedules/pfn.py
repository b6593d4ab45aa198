"""FedPFN: train only the round mask's trainable weights for E epochs."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from fedtna.schedules import register
from fedtna.schedules.round_masks import round_fixed_masks
from fedtna.training import Phase


@register("pfn")
def pfn_schedule(model: nn.Module, round_config: Mapping, run_config: Mapping, steps_per_epoch: int) -> list[Phase]:
    """One phase of ``local_epochs`` epochs with the round's anchors fixed."""
    masks = round_fixed_masks(model, round_config, run_config)
    return [Phase(fixed_masks=masks, num_steps=int(run_config["local_epochs"]) * steps_per_epoch)]
