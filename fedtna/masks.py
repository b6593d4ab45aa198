"""Seeded anchor masks of TNA-PFN and the guard that keeps anchors bit-exact.

A mask is a dict ``parameter name -> bool tensor`` where ``True`` marks a *fixed*
weight (an anchor) and ``False`` a trainable one. Every mask is expanded from an
integer seed and a stable digest of the parameter name with a dedicated CPU
``torch.Generator``, so every process, machine and device builds the same mask.
No Flower import here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from fedtna.errors import ConfigError

FixedMasks = dict[str, torch.Tensor]

GRANULARITIES = ("weight", "neuron")
_SEED_BITS = 63


@dataclass(frozen=True)
class MaskSpec:
    """What a mask fixes: ``ratio`` of the weights (or whole neurons), optionally only in ``scope`` layers."""

    ratio: float
    granularity: str
    scope: tuple[str, ...] | None = None


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any printable parts (never Python's salted ``hash``)."""
    text = "/".join(str(part) for part in parts)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << _SEED_BITS) - 1)


def in_scope(parameter_name: str, scope: Sequence[str] | None) -> bool:
    """Whether a parameter belongs to one of the scoped layers (``None`` = all)."""
    if scope is None:
        return True
    return any(parameter_name == layer or parameter_name.startswith(layer + ".") for layer in scope)


def validate_scope(scope: Sequence[str] | None, model: nn.Module) -> None:
    """Raise a one-line ConfigError naming any scoped layer the model does not have."""
    if scope is None:
        return
    names = [name for name, _ in model.named_parameters()]
    unknown = [layer for layer in scope if not any(in_scope(name, [layer]) for name in names)]
    if unknown:
        layers = sorted({name.rsplit(".", 1)[0] for name in names})
        raise ConfigError(
            f"mask.scope: unknown layer name(s) {unknown}; this model has layers {layers}"
        )


def _draw_one(shape: torch.Size, seed: int, mask_ratio: float, granularity: str) -> torch.Tensor:
    generator = torch.Generator(device="cpu").manual_seed(seed)
    if granularity == "weight":
        return torch.rand(shape, generator=generator) < mask_ratio
    units = torch.rand(shape[0], generator=generator) < mask_ratio
    return units.view(-1, *([1] * (len(shape) - 1))).expand(shape).clone()


def draw_fixed_masks(parameters: Iterable[tuple[str, torch.Tensor]], mask_seed: int, spec: MaskSpec) -> FixedMasks:
    """Expand ``mask_seed`` into one fixed-weight mask per (scoped) parameter.

    ``weight`` fixes every scalar independently with probability ``spec.ratio``;
    ``neuron`` fixes whole output units (index 0 of the tensor): a unit's weights and bias
    together, drawn once per layer. Parameters outside
    ``spec.scope`` get no mask and train freely. Masks live on the CPU. The spec's
    ranges are checked once, in ``fedtna.config.checks``.
    """
    masks: FixedMasks = {}
    for name, tensor in parameters:
        if not in_scope(name, spec.scope):
            continue
        # a neuron is one unit of its layer: its weight row and its bias are drawn together
        owner = name.rpartition(".")[0] if spec.granularity == "neuron" else name
        masks[name] = _draw_one(tensor.shape, derive_seed(mask_seed, owner), spec.ratio, spec.granularity)
    return masks


def complement(masks: Mapping[str, torch.Tensor]) -> FixedMasks:
    """The reversed mask: what was fixed becomes trainable and vice versa."""
    return {name: ~mask for name, mask in masks.items()}


def masks_checksum(masks: Mapping[str, torch.Tensor]) -> int:
    """A 48-bit digest of the mask bits (exact as an int and as a float metric)."""
    digest = hashlib.sha256()
    for name in sorted(masks):
        digest.update(name.encode("utf-8"))
        digest.update(masks[name].to(torch.uint8).flatten().numpy().tobytes())
    return int.from_bytes(digest.digest()[:6], "little")


def fixed_fraction(masks: Mapping[str, torch.Tensor], model: nn.Module) -> float:
    """Fraction of all model parameters (scalars) that the masks fix."""
    total = sum(parameter.numel() for parameter in model.parameters())
    fixed = sum(int(mask.sum()) for mask in masks.values())
    return fixed / total if total else 0.0


def mask_memory_bytes(masks: Mapping[str, torch.Tensor]) -> int:
    """Bytes held by the boolean masks themselves."""
    return sum(mask.numel() * mask.element_size() for mask in masks.values())


class AnchorGuard:
    """Keeps the fixed entries of a model's parameters at their values at creation.

    Only the fixed values are stored (a compact 1-D copy per parameter), never a full
    float copy of the model. ``restore()`` after every optimizer step writes them back
    exactly, whatever the optimizer did (momentum, weight decay, Adam, proximal term).
    """

    def __init__(self, model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
        named = dict(model.named_parameters())
        self._entries: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for name, mask in masks.items():
            parameter = named[name]
            device_mask = mask.to(parameter.device)
            if not bool(device_mask.any()):
                continue
            anchors = parameter.detach().masked_select(device_mask)
            self._entries.append((parameter, device_mask, anchors))

    @torch.no_grad()
    def restore(self) -> None:
        """Write every anchor back to its parameter, bit for bit."""
        for parameter, mask, anchors in self._entries:
            parameter.masked_scatter_(mask, anchors)

    @torch.no_grad()
    def max_drift(self) -> float:
        """Largest absolute difference between a fixed entry and its anchor value."""
        drift = 0.0
        for parameter, mask, anchors in self._entries:
            difference = (parameter.masked_select(mask) - anchors).abs().max()
            drift = max(drift, float(difference))
        return drift

    @property
    def anchor_bytes(self) -> int:
        """Bytes of anchor values held (fixed entries only)."""
        return sum(anchors.numel() * anchors.element_size() for _, _, anchors in self._entries)
