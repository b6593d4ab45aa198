"""Expand the round's mask from the seed the server sent (shared by masked schedules)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from fedtna.masks import FixedMasks, draw_fixed_masks


def round_fixed_masks(model: nn.Module, round_config: Mapping, run_config: Mapping) -> FixedMasks:
    """The fixed-weight masks of this round, identical on every client."""
    mask_options = run_config.get("mask", {}) or {}
    scope = mask_options.get("scope")
    return draw_fixed_masks(
        model.named_parameters(),
        mask_seed=int(round_config["mask-seed"]),
        mask_ratio=float(round_config["mask-ratio"]),
        granularity=str(mask_options.get("granularity", "weight")),
        scope=list(scope) if scope is not None else None,
    )
