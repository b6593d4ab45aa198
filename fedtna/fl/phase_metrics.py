"""What a client reports about the masks it trained under, from the phases that ran (> 0 steps) only.

* ``fixed_fraction``: the step-weighted mean, over the phases that ran, of the fraction of all
  parameters each held fixed (a phase without masks holds none): the fraction of weights frozen
  at an average local step. FedPFN: ρ. FedPNU with both phases: (s₁ρ + s₂(1 − ρ)) / (s₁ + s₂),
  about 0.5 for an even split; with the complement phase alone (``pnu_split=epoch`` at E = 1): 1 − ρ.
* ``anchor_drift``: the largest move of a held weight in any phase that ran (0.0: bit-exact).
* ``mask_checksum``: the digest of the masks of the phases that ran, in order: for one phase its
  ``masks_checksum``, for several a digest of theirs (:func:`chained_checksum`). Which phases run
  depends on the client's step count, so the server accepts the digest of any ordered selection
  of the masks the round may use (:func:`accepted_checksums`).

None of them is reported when no masked phase ran.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from itertools import combinations

import torch
from torch import nn

from fedtna.fl.client_report import ANCHOR_DRIFT, FIXED_FRACTION, MASK_CHECKSUM, MaskReport
from fedtna.masks import fixed_fraction, masks_checksum
from fedtna.training import Phase

CHECKSUM_BYTES = 6  # masks_checksum's 48 bits: exact as an int and as a float metric


def chained_checksum(checksums: Sequence[int]) -> int:
    """One phase: its checksum; several: a 48-bit digest of theirs, in order."""
    if len(checksums) == 1:
        return checksums[0]
    digest = hashlib.sha256(b"".join(value.to_bytes(CHECKSUM_BYTES, "little") for value in checksums))
    return int.from_bytes(digest.digest()[:CHECKSUM_BYTES], "little")


def mask_report(phases: Sequence[Phase], model: nn.Module, anchor_drift: float) -> MaskReport | None:
    """``fixed_fraction``, ``anchor_drift`` and ``mask_checksum`` of the phases that ran (None if no masked one)."""
    ran = [phase for phase in phases if phase.num_steps > 0]
    held = [phase.fixed_masks for phase in ran if phase.fixed_masks is not None]
    if not held:
        return None
    fractions = [fixed_fraction(phase.fixed_masks, model) if phase.fixed_masks is not None else 0.0
                 for phase in ran]
    steps = sum(phase.num_steps for phase in ran)
    mean = fractions[0] if len(ran) == 1 else sum(p.num_steps * f for p, f in zip(ran, fractions, strict=True)) / steps
    checksum = chained_checksum([masks_checksum(masks) for masks in held])
    return MaskReport(fixed_fraction=mean, anchor_drift=anchor_drift, mask_checksum=checksum)


def mask_metrics(phases: Sequence[Phase], model: nn.Module, anchor_drift: float) -> dict[str, float | int]:
    """:func:`mask_report` as the reply's metric keys ({} if no masked phase ran)."""
    report = mask_report(phases, model, anchor_drift)
    if report is None:
        return {}
    return {FIXED_FRACTION: report.fixed_fraction, ANCHOR_DRIFT: report.anchor_drift,
            MASK_CHECKSUM: report.mask_checksum}


def accepted_checksums(planned: Sequence[Mapping[str, torch.Tensor]]) -> set[int]:
    """The ``mask_checksum`` of every ordered, non-empty selection of the masks a round's phases may hold."""
    sums = [masks_checksum(masks) for masks in planned]
    return {chained_checksum([sums[i] for i in chosen])
            for size in range(1, len(sums) + 1) for chosen in combinations(range(len(sums)), size)}
