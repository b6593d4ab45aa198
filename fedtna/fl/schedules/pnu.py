"""FedPNU: first part of the local work under the round mask, the rest under its complement.

``pnu_split = epoch`` (the paper): int(E/2) epochs with the mask, E - int(E/2) with the
complement. With E = 1 the first part is empty, so the whole epoch trains only the weights
the mask would fix (FedPFN with ratio 1 - rho). ``pnu_split = step`` splits the
E * steps_per_epoch local steps in half instead, so E = 1 still alternates. ``pnu_split = auto``
(the default) is ``epoch`` for E >= 2 and ``step`` for E = 1, resolved here, where E is known.
"""

from __future__ import annotations

from torch import nn

from fedtna.errors import ConfigError
from fedtna.fl.round_plan import RoundPlan, plan_masks
from fedtna.fl.schedules import LocalWork, register
from fedtna.masks import complement
from fedtna.training import Phase

PNU_SPLITS = ("auto", "epoch", "step")
SPLIT_OPTION = "pnu_split"


def resolve_split(split: str, local_epochs: int) -> str:
    """``epoch`` or ``step``: ``auto`` is ``epoch`` when there are two epochs or more to split, else ``step``."""
    if split not in PNU_SPLITS:
        raise ConfigError(f"strategy.pnu_split={split!r} is not one of {list(PNU_SPLITS)}")
    if split == "auto":
        return "epoch" if local_epochs >= 2 else "step"
    return split


def first_phase_steps(split: str, work: LocalWork) -> int:
    """Steps trained under the mask before switching to its complement."""
    if resolve_split(split, work.local_epochs) == "epoch":
        return (work.local_epochs // 2) * work.steps_per_epoch
    return work.total_steps // 2


@register("pnu")
def pnu_schedule(model: nn.Module, plan: RoundPlan, work: LocalWork) -> list[Phase]:
    """Two phases: the round mask, then its complement."""
    masks = plan_masks(plan, model.named_parameters())
    if masks is None:
        raise ConfigError("schedule 'pnu' needs a round plan with a mask; use it with a masked strategy (FedPNU)")
    if SPLIT_OPTION not in plan.schedule_options:
        raise ConfigError("schedule 'pnu' needs the round option pnu_split; use it with FedPNU, which sends it")
    first = first_phase_steps(str(plan.schedule_options[SPLIT_OPTION]), work)
    return [Phase(fixed_masks=masks, num_steps=first),
            Phase(fixed_masks=complement(masks), num_steps=work.total_steps - first)]
