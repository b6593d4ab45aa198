"""Per-batch data augmentation as tensor operations on the training device; no Flower import.

A batch transform is a callable ``(images, generator) -> images`` that ``local_train`` applies
to every mini-batch. Its random numbers come from the training generator (the same seeded
CPU ``torch.Generator`` that orders the data), so one seed fixes the augmentation as well.
Only a few numbers per image are drawn on the generator's device; the pixels never leave
the batch's device and no Python loop runs over the images.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

BatchTransform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class RandomCropFlip:
    """Random crop after zero padding, then a horizontal flip with probability 1/2 (the CIFAR standard).

    Equivalent to torchvision's ``RandomCrop(size, padding=padding)`` followed by
    ``RandomHorizontalFlip()``, applied to the whole (N, C, H, W) batch at once. The padding
    value is 0 in the *normalised* space the tensors are in (the channel mean when data is
    normalised with its own statistics, mid-grey under CIFAR's 0.5/0.5), where torchvision,
    working on raw pixels, pads with black.
    """

    def __init__(self, padding: int = 4) -> None:
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
        self.padding = padding

    def draw(self, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-image row offset, column offset (0..2*padding) and flip flag, from ``generator`` in that order."""
        offsets = torch.randint(0, 2 * self.padding + 1, (count, 2), generator=generator, device=generator.device)
        flips = torch.randint(0, 2, (count,), generator=generator, device=generator.device).bool()
        return offsets[:, 0], offsets[:, 1], flips

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A new (N, C, H, W) batch on ``images``' device; ``images`` itself is not modified."""
        if images.dim() != 4:
            raise ValueError(f"expected an (N, C, H, W) batch, got shape {tuple(images.shape)}")
        count, _, height, width = images.shape
        rows_offset, cols_offset, flips = (t.to(images.device) for t in self.draw(count, generator))
        pad = self.padding
        padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
        row_range = torch.arange(height, device=images.device)
        col_range = torch.arange(width, device=images.device)
        rows = rows_offset[:, None] + row_range  # (N, H)
        cols = cols_offset[:, None] + torch.where(flips[:, None], width - 1 - col_range, col_range)  # (N, W)
        batch = torch.arange(count, device=images.device)
        # channels-last view so the advanced indices are adjacent: result (N, H, W, C)
        gathered = padded.permute(0, 2, 3, 1)[batch[:, None, None], rows[:, :, None], cols[:, None, :]]
        return gathered.permute(0, 3, 1, 2).contiguous()

    def __repr__(self) -> str:
        return f"RandomCropFlip(padding={self.padding})"


AUGMENTATIONS: dict[str, Callable[[], BatchTransform | None]] = {
    "none": lambda: None,
    "crop_flip": lambda: RandomCropFlip(padding=4),
}


def batch_transform(name: str) -> BatchTransform | None:
    """The batch transform the config key ``augmentation`` names (None for ``none``; names checked in config.checks)."""
    return AUGMENTATIONS[name]()
