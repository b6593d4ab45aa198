"""One place that turns raw 0..255 pixels into the normalised float32 tensors models expect."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def normalise_pixels(
    pixels: np.ndarray | torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """Scale (N, C, H, W) pixels in 0..255 to [0, 1], then standardise each channel."""
    raw = torch.as_tensor(np.asarray(pixels))
    images = raw.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
    images.div_(255.0)
    channels = images.shape[1]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"need one mean/std per channel ({channels}), got {len(mean)}/{len(std)}")
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, channels, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, channels, 1, 1)
    return images.sub_(mean_t).div_(std_t)


def labels_tensor(labels: np.ndarray | torch.Tensor | Sequence[int]) -> torch.Tensor:
    """Labels as a 1-D int64 tensor, whatever container the source used."""
    return torch.as_tensor(np.asarray(labels), dtype=torch.int64).reshape(-1)
