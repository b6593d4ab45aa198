"""CIFAR-style ResNet (He et al. 2016, Sec. 4.2): 6n+2 layers, parameter-free "option A" shortcuts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fedtna.models.validation import ModelConfigError, checked_input_shape, checked_positive

STAGE_WIDTHS = (16, 32, 64)


def blocks_per_stage(depth: int) -> int:
    """Return n for a depth of 6n+2 (two convs per block, three stages, plus stem and classifier)."""
    if int(depth) != depth or depth < 8 or (depth - 2) % 6 != 0:
        raise ModelConfigError(f"ResNet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, ...), got {depth!r}")
    return (int(depth) - 2) // 6


class ZeroPadShortcut(nn.Module):
    """Identity shortcut that subsamples spatially and zero-pads channels, so it adds no parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        extra_channels = out_channels - in_channels
        self.pad_front = extra_channels // 2
        self.pad_back = extra_channels - self.pad_front

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Return the input at the block's output resolution and channel count."""
        subsampled = features[:, :, :: self.stride, :: self.stride]
        return F.pad(subsampled, (0, 0, 0, 0, self.pad_front, self.pad_back))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut; ReLU after the addition."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = ZeroPadShortcut(in_channels, out_channels, stride)
        else:
            self.shortcut = nn.Identity()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Return relu(residual(features) + shortcut(features))."""
        residual = torch.relu(self.bn1(self.conv1(features)))
        residual = self.bn2(self.conv2(residual))
        return torch.relu(residual + self.shortcut(features))


class ResNet20(nn.Module):
    """CIFAR ResNet; depth 20 by default, any 6n+2 allowed; `width` multiplies every stage's channels.

    Submodules: conv1/bn1 (stem), layer1..layer3 (stages of BasicBlocks), fc (classifier).
    Global average pooling makes it work for any image size of at least 1x1.
    """

    layer1: nn.Sequential  # the stages, registered with add_module
    layer2: nn.Sequential
    layer3: nn.Sequential

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        width: int = 1,
        depth: int = 20,
    ) -> None:
        super().__init__()
        channels, _, _ = checked_input_shape(input_shape)
        num_classes = checked_positive("num_classes", num_classes)
        width = checked_positive("width", width)
        num_blocks = blocks_per_stage(depth)

        stage_widths = [base * width for base in STAGE_WIDTHS]
        self.conv1 = nn.Conv2d(channels, stage_widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stage_widths[0])
        in_channels = stage_widths[0]
        for stage_index, out_channels in enumerate(stage_widths, start=1):
            first_stride = 1 if stage_index == 1 else 2
            blocks = []
            for block_index in range(num_blocks):
                stride = first_stride if block_index == 0 else 1
                blocks.append(BasicBlock(in_channels, out_channels, stride))
                in_channels = out_channels
            self.add_module(f"layer{stage_index}", nn.Sequential(*blocks))
        self.fc = nn.Linear(in_channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """Kaiming-normal init of convs and the classifier, as in the reference CIFAR ResNets."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch of images."""
        features = torch.relu(self.bn1(self.conv1(images)))
        features = self.layer3(self.layer2(self.layer1(features)))
        pooled = torch.flatten(F.adaptive_avg_pool2d(features, 1), start_dim=1)
        return self.fc(pooled)
