"""CIFAR-style VGG (Simonyan & Zisserman 2015 conv stacks, single linear classifier)."""

from __future__ import annotations

import torch
from torch import nn

from fedtna.models.validation import ModelConfigError, checked_input_shape, checked_positive

POOL = "M"

# Standard conv channel plans (configurations A, B, D, E of the VGG paper); POOL marks a 2x2 max-pool.
CHANNEL_PLANS: dict[int, tuple[int | str, ...]] = {
    11: (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL),
    13: (64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL),
    16: (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512, POOL),
    19: (
        64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL,
        512, 512, 512, 512, POOL, 512, 512, 512, 512, POOL,
    ),
}


def channel_plan(depth: int) -> tuple[int | str, ...]:
    """Return the conv/pool plan for a VGG depth, or fail naming the supported depths."""
    if depth not in CHANNEL_PLANS:
        supported = "/".join(str(known) for known in sorted(CHANNEL_PLANS))
        raise ModelConfigError(f"VGG depth must be one of {supported}, got {depth!r}")
    return CHANNEL_PLANS[depth]


class VGG(nn.Module):
    """VGG-11/13/16/19 conv stack with 3x3 padded convs, then one Linear layer to the classes.

    Like the common CIFAR VGG variants there is no three-layer dense head: the classifier is a
    single Linear(last_channels * h * w, num_classes). A max-pool from the plan is skipped once the
    feature map is smaller than 2x2, so 28x28 inputs (which would shrink to zero after five pools)
    work too. Conv channels are plan_channels * width // base_width_divisor; the divisor lets CPU
    runs use thin networks. Convs have no bias when followed by BatchNorm (which would cancel it).
    Modules are named features.<index> (as in torchvision) and classifier.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        depth: int = 11,
        batch_norm: bool = True,
        width: int = 1,
        base_width_divisor: int = 1,
    ) -> None:
        super().__init__()
        channels, height, image_width = checked_input_shape(input_shape)
        num_classes = checked_positive("num_classes", num_classes)
        width = checked_positive("width", width)
        base_width_divisor = checked_positive("base_width_divisor", base_width_divisor)
        plan = channel_plan(depth)

        layers: list[nn.Module] = []
        in_channels = channels
        for step in plan:
            if step == POOL:
                if min(height, image_width) >= 2:
                    layers.append(nn.MaxPool2d(2))
                    height, image_width = height // 2, image_width // 2
                continue
            out_channels = int(step) * width // base_width_divisor
            if out_channels < 1:
                raise ModelConfigError(
                    f"VGG width {width} / base_width_divisor {base_width_divisor} leaves a layer with "
                    f"{int(step)} * {width} // {base_width_divisor} = 0 channels"
                )
            layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU())
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_channels * height * image_width, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """Kaiming-normal (fan-out) conv init, suited to ReLU stacks this deep."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch of images."""
        return self.classifier(torch.flatten(self.features(images), start_dim=1))
