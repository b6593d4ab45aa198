"""The small CIFAR CNN of the TNA-PFN paper (three convs, two dense layers)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fedtna.models.validation import ModelConfigError, checked_input_shape, checked_positive

KERNEL_SIZE = 3


def _after_valid_conv(size: int) -> int:
    """Spatial size after an unpadded 3x3 convolution with stride 1."""
    return size - KERNEL_SIZE + 1


def _after_pool(size: int) -> int:
    """Spatial size after a 2x2 max-pool with stride 2 (floor)."""
    return size // 2


def _final_spatial_size(size: int) -> int:
    """Height or width of conv3's output: conv, pool, conv, pool, conv (all unpadded)."""
    size = _after_pool(_after_valid_conv(size))
    size = _after_pool(_after_valid_conv(size))
    return _after_valid_conv(size)


class CNN(nn.Module):
    """Conv32-pool-Conv64-pool-Conv64-FC64-FC(classes); `width` multiplies every hidden layer's size.

    Convolutions are unpadded, so the flattened size depends on the image size and is computed from
    input_shape: 64*4*4 = 1024 for 32x32 images and 64*3*3 = 576 for 28x28 images (at width 1).
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, width: int = 1) -> None:
        super().__init__()
        channels, height, image_width = checked_input_shape(input_shape)
        num_classes = checked_positive("num_classes", num_classes)
        width = checked_positive("width", width)

        final_height, final_width = _final_spatial_size(height), _final_spatial_size(image_width)
        if final_height < 1 or final_width < 1:
            raise ModelConfigError(
                f"CNN needs images of at least 18x18 pixels (three 3x3 convs and two pools), got {height}x{image_width}"
            )

        self.conv1 = nn.Conv2d(channels, 32 * width, KERNEL_SIZE)
        self.conv2 = nn.Conv2d(32 * width, 64 * width, KERNEL_SIZE)
        self.conv3 = nn.Conv2d(64 * width, 64 * width, KERNEL_SIZE)
        self.flat_features = 64 * width * final_height * final_width
        self.fc1 = nn.Linear(self.flat_features, 64 * width)
        self.fc2 = nn.Linear(64 * width, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch of images."""
        features = F.max_pool2d(torch.relu(self.conv1(images)), 2)
        features = F.max_pool2d(torch.relu(self.conv2(features)), 2)
        features = torch.relu(self.conv3(features))
        features = torch.relu(self.fc1(torch.flatten(features, start_dim=1)))
        return self.fc2(features)
