"""Plain local training: every weight trains for E epochs (FedAvg, FedProx)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from fedtna.schedules import register
from fedtna.training import Phase


@register("full")
def full_schedule(model: nn.Module, round_config: Mapping, run_config: Mapping, steps_per_epoch: int) -> list[Phase]:
    """One unmasked phase of ``local_epochs`` epochs."""
    return [Phase(fixed_masks=None, num_steps=int(run_config["local_epochs"]) * steps_per_epoch)]
