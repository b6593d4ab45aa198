"""Permutation specs of every model fedtna ships: MLP, CNN, VGG (with BatchNorm) and ResNet-20.

Each hidden layer's units get one permutation; a BatchNorm's four vectors follow its layer;
classifier outputs never move. ResNet's residual stream shares one permutation per stage
across all blocks (a block's output is added to its input), and its zero-padding shortcut
ties each stage's carried-over channels to the previous stage's order (see
``fedtna.fusion.permutations``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from fedtna.errors import ConfigError
from fedtna.fusion.permutations import AxisPermutation, PermutationSpec, Segments, segments_of, stack_segments
from fedtna.models.cnn import CNN
from fedtna.models.mlp import MLP
from fedtna.models.resnet import BasicBlock, ResNet20, ZeroPadShortcut
from fedtna.models.vgg import VGG

BN_VECTORS = ("weight", "bias", "running_mean", "running_var")
BN_STATISTICS = ("running_mean", "running_var")


class _Builder:
    """Collects view shapes and axes, parameter by parameter."""

    def __init__(self) -> None:
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.axes: dict[str, tuple[AxisPermutation, ...]] = {}
        self.statistics: set[str] = set()

    def add(self, name: str, shape: tuple[int, ...], axes: tuple[AxisPermutation, ...]) -> None:
        self.shapes[name], self.axes[name] = tuple(shape), axes

    def layer(self, prefix: str, layer: nn.Conv2d | nn.Linear, out_perm: AxisPermutation,
              in_perm: AxisPermutation) -> None:
        """A conv or dense layer: weight (out, in, ...), bias (out)."""
        extra = (None,) * (layer.weight.dim() - 2)
        self.add(f"{prefix}.weight", tuple(layer.weight.shape), (out_perm, in_perm, *extra))
        if layer.bias is not None:
            self.add(f"{prefix}.bias", tuple(layer.bias.shape), (out_perm,))

    def batch_norm(self, prefix: str, layer: nn.BatchNorm2d, perm: AxisPermutation) -> None:
        """A BatchNorm's affine vectors and running statistics follow its channels."""
        for vector in BN_VECTORS:
            self.add(f"{prefix}.{vector}", (layer.num_features,), (perm,))
        self.statistics.update(f"{prefix}.{vector}" for vector in BN_STATISTICS)

    def spec(self) -> PermutationSpec:
        matched = frozenset(name for name in self.axes if name not in self.statistics)
        return PermutationSpec(view_shapes=self.shapes, axes=self.axes, matched=matched)


def mlp_spec(model: MLP) -> PermutationSpec:
    """One permutation per hidden layer fc1..fcN; the classifier's outputs stay in place."""
    builder, previous = _Builder(), None
    for name in model.hidden_layer_names:
        builder.layer(name, getattr(model, name), f"P_{name}", previous)
        previous = f"P_{name}"
    builder.layer("classifier", model.classifier, None, previous)
    return builder.spec()


def cnn_spec(model: CNN) -> PermutationSpec:
    """Permute conv1..conv3 channels and fc1 units; fc1's inputs move in blocks of H*W per channel."""
    builder = _Builder()
    for name, in_perm in (("conv1", None), ("conv2", "P_conv1"), ("conv3", "P_conv2")):
        builder.layer(name, getattr(model, name), f"P_{name}", in_perm)
    channels = model.conv3.out_channels
    builder.layer("fc1", model.fc1, "P_fc1", "P_conv3")
    builder.add("fc1.weight", (model.fc1.out_features, channels, model.flat_features // channels),
                ("P_fc1", "P_conv3", None))
    builder.layer("fc2", model.fc2, None, "P_fc1")
    return builder.spec()


def vgg_spec(model: VGG) -> PermutationSpec:
    """One permutation per conv (its BatchNorm follows); the classifier's inputs move in blocks per channel."""
    builder, previous, channels = _Builder(), None, 0
    for index, layer in enumerate(model.features):
        if isinstance(layer, nn.Conv2d):
            previous_out, channels = f"P_features.{index}", layer.out_channels
            builder.layer(f"features.{index}", layer, previous_out, previous)
            previous = previous_out
        elif isinstance(layer, nn.BatchNorm2d):
            builder.batch_norm(f"features.{index}", layer, previous)
    classifier = model.classifier
    builder.add("classifier.weight", (classifier.out_features, channels, classifier.in_features // channels),
                (None, previous, None))
    builder.add("classifier.bias", (classifier.out_features,), (None,))
    return builder.spec()


def resnet_spec(model: ResNet20) -> PermutationSpec:
    """Residual stream: one permutation per stage (``P_stream1``; later stages keep the carried-over
    channels in the previous stage's order and permute their zero-padded channels, ``P_pad<s>``);
    each block's inner channels: ``P_layer<s>.<b>``."""
    builder = _Builder()
    width = model.conv1.out_channels
    stream: Segments = segments_of("P_stream1", width)
    builder.layer("conv1", model.conv1, stream, None)
    builder.batch_norm("bn1", model.bn1, stream)
    for stage in (1, 2, 3):
        for block_index, block in enumerate(getattr(model, f"layer{stage}")):
            assert isinstance(block, BasicBlock)
            block_in = stream
            if isinstance(block.shortcut, ZeroPadShortcut):  # the stream widens: carried channels + padding
                front, carried, out = block.shortcut.pad_front, width, block.conv2.out_channels
                padded = tuple(range(front)) + tuple(range(front + carried, out))
                stream = (*stack_segments([stream], front), (f"P_pad{stage}", padded))
                width = out
            prefix, inner = f"layer{stage}.{block_index}", f"P_layer{stage}.{block_index}"
            builder.layer(f"{prefix}.conv1", block.conv1, inner, block_in)
            builder.batch_norm(f"{prefix}.bn1", block.bn1, inner)
            builder.layer(f"{prefix}.conv2", block.conv2, stream, inner)
            builder.batch_norm(f"{prefix}.bn2", block.bn2, stream)
    builder.layer("fc", model.fc, None, stream)
    return builder.spec()


# each builder takes an instance of its key class, which a dict's type cannot say: hence Any
SPEC_BUILDERS: dict[type[nn.Module], Callable[[Any], PermutationSpec]] = {
    MLP: mlp_spec, CNN: cnn_spec, VGG: vgg_spec, ResNet20: resnet_spec}


def supports(model: nn.Module) -> bool:
    """Whether weight matching knows this architecture."""
    return type(model) in SPEC_BUILDERS


def supported_names() -> list[str]:
    """Class names weight matching handles, for error messages."""
    return [model_class.__name__ for model_class in SPEC_BUILDERS]


def permutation_spec(model: nn.Module) -> PermutationSpec:
    """The spec of a supported model, or a one-line ConfigError."""
    builder = SPEC_BUILDERS.get(type(model))
    if builder is None:
        raise ConfigError(f"weight matching does not support {type(model).__name__}; supported: {supported_names()}")
    return builder(model)
