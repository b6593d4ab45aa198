"""FedPNU: first part of the local work under the round mask, the rest under its complement.

``pnu-split = epoch`` (the paper): int(E/2) epochs with the mask, E - int(E/2) with the
complement. With E = 1 the first part is empty, so the whole epoch trains only the
weights the mask would fix (FedPFN with ratio 1 - rho). ``pnu-split = step`` splits the
E * steps_per_epoch local steps in half instead, so E = 1 still alternates.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from fedtna.errors import ConfigError
from fedtna.masks import complement
from fedtna.schedules import register
from fedtna.schedules.round_masks import round_fixed_masks
from fedtna.training import Phase

PNU_SPLITS = ("epoch", "step")


def first_phase_steps(split: str, local_epochs: int, steps_per_epoch: int) -> int:
    """Steps trained under the mask before switching to its complement."""
    if split == "epoch":
        return (local_epochs // 2) * steps_per_epoch
    if split == "step":
        return (local_epochs * steps_per_epoch) // 2
    raise ConfigError(f"strategy.pnu_split={split!r} is not one of {list(PNU_SPLITS)}")


@register("pnu")
def pnu_schedule(model: nn.Module, round_config: Mapping, run_config: Mapping, steps_per_epoch: int) -> list[Phase]:
    """Two phases: the round mask, then its complement."""
    masks = round_fixed_masks(model, round_config, run_config)
    local_epochs = int(run_config["local_epochs"])
    first = first_phase_steps(str(round_config["pnu-split"]), local_epochs, steps_per_epoch)
    total = local_epochs * steps_per_epoch
    return [Phase(fixed_masks=masks, num_steps=first), Phase(fixed_masks=complement(masks), num_steps=total - first)]
