"""FedPFN: clients train only the weights the round's seeded mask leaves free."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from fedtna.masks import FixedMasks, derive_seed, draw_fixed_masks
from fedtna.strategies.base import SeededStrategy


class FedPFN(SeededStrategy):
    """Partially fixed neurons: a fraction ``mask_ratio`` of weights are the round's anchors."""

    schedule = "pfn"
    uses_masks = True

    def mask_seed(self, server_round: int) -> int:
        """A fresh mask each round, or one for the whole run with ``mask.per_round=false``."""
        per_round = bool(self.run_config["mask"].get("per_round", True))
        return derive_seed(self.run_config["seed"], "mask", server_round if per_round else 0)

    def round_config(self, server_round: int) -> dict[str, Any]:
        """Add the mask seed and ratio; the mask itself never travels."""
        config = super().round_config(server_round)
        config["mask-seed"] = self.mask_seed(server_round)
        config["mask-ratio"] = float(self.run_config["mask_ratio"])
        return config

    def expected_masks(self, round_config: Mapping[str, Any]) -> FixedMasks:
        """The masks every client must build, from the same seed and names."""
        mask_options = self.run_config["mask"]
        scope = mask_options.get("scope")
        shapes = ((name, torch.empty(shape, device="meta")) for name, shape in self.parameter_shapes.items())
        return draw_fixed_masks(
            shapes,
            mask_seed=int(round_config["mask-seed"]),
            mask_ratio=float(round_config["mask-ratio"]),
            granularity=str(mask_options.get("granularity", "weight")),
            scope=list(scope) if scope is not None else None,
        )
