"""Fully connected baseline: the simplest model whose hidden neurons TNA-PFN can fix."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fedtna.models.validation import checked_input_shape, checked_positive


class MLP(nn.Module):
    """Flatten, then Linear+ReLU per hidden size (fc1, fc2, ...), then a linear `classifier`."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        hidden_sizes: Sequence[int] = (200, 200),
    ) -> None:
        super().__init__()
        channels, height, width = checked_input_shape(input_shape)
        num_classes = checked_positive("num_classes", num_classes)
        hidden_sizes = [checked_positive("hidden_sizes entry", size) for size in hidden_sizes]

        self.hidden_layer_names: list[str] = []
        in_features = channels * height * width
        for index, out_features in enumerate(hidden_sizes, start=1):
            name = f"fc{index}"
            self.add_module(name, nn.Linear(in_features, out_features))
            self.hidden_layer_names.append(name)
            in_features = out_features
        self.classifier = nn.Linear(in_features, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch of images."""
        features = torch.flatten(images, start_dim=1)
        for name in self.hidden_layer_names:
            features = torch.relu(getattr(self, name)(features))
        return self.classifier(features)
