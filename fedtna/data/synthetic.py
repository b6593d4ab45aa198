"""Random class-dependent images of any shape: benchmarks and tests without files."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch

from fedtna.data.bundle import DatasetBundle


@lru_cache(maxsize=4)
def load_synthetic(
    num_train: int = 2000,
    num_test: int = 500,
    channels: int = 3,
    height: int = 32,
    width: int = 32,
    num_classes: int = 10,
    seed: int = 0,
    **_: Any,
) -> DatasetBundle:
    """Gaussian images whose mean depends on the class, so models can learn something."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(num_classes, channels, height, width, generator=generator)

    def draw(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, num_classes, (count,), generator=generator)
        noise = torch.randn(count, channels, height, width, generator=generator)
        return prototypes[labels] * 0.5 + noise, labels

    train_x, train_y = draw(num_train)
    test_x, test_y = draw(num_test)
    return DatasetBundle("synthetic", train_x, train_y, test_x, test_y, num_classes)
