"""The round protocol: what the server tells every client of a round, in one dataclass.

The server builds a :class:`RoundPlan`, sends ``plan.to_record()`` as the train message's
ConfigRecord, and every client reads it back with :meth:`RoundPlan.from_record`; masks
come from :func:`plan_masks` on both sides, so server and clients agree by construction
(the mask checksum each client reports stays as the runtime proof). A mask never
travels: only its seed, ratio, granularity and scope.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from flwr.app import ConfigRecord, ConfigRecordValues

from fedtna.masks import FixedMasks, MaskSpec, draw_fixed_masks

ConfigValue = int | float | str | bool


@dataclass(frozen=True)
class MaskPlan:
    """The seed the round's mask is expanded from, and what it fixes."""

    seed: int
    spec: MaskSpec


@dataclass(frozen=True)
class RoundPlan:
    """Everything a client needs to train one round, besides the global arrays."""

    server_round: int
    round_seed: int
    schedule: str
    proximal_mu: float = 0.0
    mask: MaskPlan | None = None
    schedule_options: Mapping[str, ConfigValue] = field(default_factory=dict)

    def to_record(self) -> ConfigRecord:
        """The ConfigRecord of the train message."""
        record: dict[str, ConfigRecordValues] = {
            "server-round": self.server_round,
            "round-seed": self.round_seed,
            "schedule": self.schedule,
            "proximal-mu": float(self.proximal_mu),
        }
        if self.mask is not None:
            record["mask-seed"] = self.mask.seed
            record["mask-ratio"] = float(self.mask.spec.ratio)
            record["mask-granularity"] = self.mask.spec.granularity
            if self.mask.spec.scope is not None:
                record["mask-scope"] = list(self.mask.spec.scope)
        for key, value in self.schedule_options.items():
            record[f"option.{key}"] = value
        return ConfigRecord(record)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RoundPlan:
        """Inverse of :meth:`to_record`."""
        mask = None
        if "mask-seed" in record:
            scope = record.get("mask-scope")
            spec = MaskSpec(ratio=float(record["mask-ratio"]), granularity=str(record["mask-granularity"]),
                            scope=tuple(str(layer) for layer in scope) if scope is not None else None)
            mask = MaskPlan(seed=int(record["mask-seed"]), spec=spec)
        options = {key.removeprefix("option."): value for key, value in record.items() if key.startswith("option.")}
        return cls(server_round=int(record["server-round"]), round_seed=int(record["round-seed"]),
                   schedule=str(record["schedule"]), proximal_mu=float(record["proximal-mu"]), mask=mask,
                   schedule_options=options)


def plan_masks(plan: RoundPlan, parameters: Iterable[tuple[str, torch.Tensor]]) -> FixedMasks | None:
    """The round's fixed-weight masks for these named parameters (None when the plan has no mask)."""
    if plan.mask is None:
        return None
    return draw_fixed_masks(parameters, plan.mask.seed, plan.mask.spec)


def shapes_as_parameters(shapes: Mapping[str, torch.Size]) -> list[tuple[str, torch.Tensor]]:
    """Named shape-only tensors, so the server expands masks without building a model."""
    return [(name, torch.empty(shape, device="meta")) for name, shape in shapes.items()]
