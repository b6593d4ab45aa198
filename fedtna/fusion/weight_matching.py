"""Post-hoc permutation alignment by weight matching (Ainsworth et al., Git Re-Basin); no Flower.

Hidden units of a network can be permuted without changing its function. Weight matching
finds, layer by layer, the permutation of model B's hidden units that maximises the summed
inner products of B's weights with model A's (into and out of each hidden layer), solving one
linear assignment per layer and sweeping over the layers until nothing changes.

A ``PermutationSpec`` says which axis of which parameter each permutation acts on. Parameters
are viewed in a shape of the spec's choosing first, which handles the flatten between the
CNN's last convolution and its first dense layer (one channel = a block of H*W columns).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from fedtna.errors import ConfigError
from fedtna.models.cnn import CNN
from fedtna.models.mlp import MLP

StateDict = dict[str, torch.Tensor]
Permutations = dict[str, torch.Tensor]


@dataclass(frozen=True)
class PermutationSpec:
    """Per parameter: the shape it is viewed in and the permutation (or None) on each view axis."""

    view_shapes: dict[str, tuple[int, ...]]
    axes: dict[str, tuple[str | None, ...]]

    def sizes(self) -> dict[str, int]:
        """Number of units each permutation reorders."""
        sizes: dict[str, int] = {}
        for name, axes in self.axes.items():
            for axis, permutation in enumerate(axes):
                if permutation is not None:
                    sizes[permutation] = self.view_shapes[name][axis]
        return sizes

    def users(self, permutation: str) -> list[tuple[str, int]]:
        """(parameter, view axis) pairs that the permutation reorders."""
        return [(name, axis) for name, axes in self.axes.items() for axis, p in enumerate(axes) if p == permutation]


def _dense(name: str, layer: nn.Linear, out_perm: str | None, in_perm: str | None) -> tuple[dict, dict]:
    shapes = {f"{name}.weight": tuple(layer.weight.shape)}
    axes: dict[str, tuple[str | None, ...]] = {f"{name}.weight": (out_perm, in_perm)}
    if layer.bias is not None:
        shapes[f"{name}.bias"] = tuple(layer.bias.shape)
        axes[f"{name}.bias"] = (out_perm,)
    return shapes, axes


def mlp_spec(model: MLP) -> PermutationSpec:
    """One permutation per hidden layer fc1..fcN; the classifier's outputs stay in place."""
    shapes: dict[str, tuple[int, ...]] = {}
    axes: dict[str, tuple[str | None, ...]] = {}
    previous: str | None = None
    for name in model.hidden_layer_names:
        layer_shapes, layer_axes = _dense(name, getattr(model, name), f"P_{name}", previous)
        shapes.update(layer_shapes)
        axes.update(layer_axes)
        previous = f"P_{name}"
    layer_shapes, layer_axes = _dense("classifier", model.classifier, None, previous)
    shapes.update(layer_shapes)
    axes.update(layer_axes)
    return PermutationSpec(view_shapes=shapes, axes=axes)


def _conv(name: str, layer: nn.Conv2d, out_perm: str, in_perm: str | None) -> tuple[dict, dict]:
    shapes = {f"{name}.weight": tuple(layer.weight.shape)}
    axes: dict[str, tuple[str | None, ...]] = {f"{name}.weight": (out_perm, in_perm, None, None)}
    if layer.bias is not None:
        shapes[f"{name}.bias"] = tuple(layer.bias.shape)
        axes[f"{name}.bias"] = (out_perm,)
    return shapes, axes


def cnn_spec(model: CNN) -> PermutationSpec:
    """Permute conv1..conv3 channels and fc1 units; fc1's inputs move in blocks of H*W per channel."""
    shapes: dict[str, tuple[int, ...]] = {}
    axes: dict[str, tuple[str | None, ...]] = {}
    for name, in_perm in (("conv1", None), ("conv2", "P_conv1"), ("conv3", "P_conv2")):
        layer_shapes, layer_axes = _conv(name, getattr(model, name), f"P_{name}", in_perm)
        shapes.update(layer_shapes)
        axes.update(layer_axes)
    channels = model.conv3.out_channels
    spatial = model.flat_features // channels
    layer_shapes, layer_axes = _dense("fc1", model.fc1, "P_fc1", "P_conv3")
    shapes.update(layer_shapes)
    axes.update(layer_axes)
    shapes["fc1.weight"] = (model.fc1.out_features, channels, spatial)
    axes["fc1.weight"] = ("P_fc1", "P_conv3", None)
    layer_shapes, layer_axes = _dense("fc2", model.fc2, None, "P_fc1")
    shapes.update(layer_shapes)
    axes.update(layer_axes)
    return PermutationSpec(view_shapes=shapes, axes=axes)


SPEC_BUILDERS: dict[type, Callable[[nn.Module], PermutationSpec]] = {MLP: mlp_spec, CNN: cnn_spec}  # type: ignore[dict-item]


def supports(model: nn.Module) -> bool:
    """Whether weight matching knows this architecture (BN/residual models are not handled)."""
    return type(model) in SPEC_BUILDERS


def supported_names() -> list[str]:
    """Class names weight matching handles, for error messages."""
    return [model_class.__name__ for model_class in SPEC_BUILDERS]


def permutation_spec(model: nn.Module) -> PermutationSpec:
    """The spec of a supported model, or a one-line ConfigError."""
    builder = SPEC_BUILDERS.get(type(model))
    if builder is None:
        raise ConfigError(
            f"weight matching does not support {type(model).__name__}; supported: {supported_names()}"
        )
    return builder(model)


def _permuted_view(tensor: torch.Tensor, view_shape: tuple[int, ...], axes: Sequence[str | None],
                   perms: Permutations, skip_axis: int | None = None) -> torch.Tensor:
    view = tensor.reshape(view_shape)
    for axis, permutation in enumerate(axes):
        if permutation is not None and axis != skip_axis:
            view = view.index_select(axis, perms[permutation])
    return view


def apply_permutations(spec: PermutationSpec, perms: Permutations, state: StateDict) -> StateDict:
    """Reorder B's units: unit i of the result is unit ``perms[p][i]`` of ``state``; the function is unchanged."""
    permuted = dict(state)
    for name, axes in spec.axes.items():
        tensor = state[name]
        permuted[name] = _permuted_view(tensor, spec.view_shapes[name], axes, perms).reshape(tensor.shape)
    return permuted


def _similarity(spec: PermutationSpec, permutation: str, perms: Permutations,
                state_a: StateDict, state_b: StateDict) -> torch.Tensor:
    """cost[i, j] = inner product of A's unit i with B's unit j over every weight touching the layer."""
    size = spec.sizes()[permutation]
    cost = torch.zeros(size, size, dtype=torch.float64)
    for name, axis in spec.users(permutation):
        view_a = state_a[name].reshape(spec.view_shapes[name]).to(torch.float64)
        view_b = _permuted_view(state_b[name], spec.view_shapes[name], spec.axes[name], perms, skip_axis=axis)
        rows_a = view_a.movedim(axis, 0).reshape(size, -1)
        rows_b = view_b.to(torch.float64).movedim(axis, 0).reshape(size, -1)
        cost += rows_a @ rows_b.T
    return cost


def weight_matching(spec: PermutationSpec, state_a: StateDict, state_b: StateDict,
                    max_sweeps: int = 100, seed: int = 0) -> Permutations:
    """Permutations aligning B to A by coordinate ascent over layers (random layer order per sweep)."""
    sizes = spec.sizes()
    perms: Permutations = {name: torch.arange(size) for name, size in sizes.items()}
    rng = np.random.default_rng(seed)
    names = sorted(sizes)
    for _ in range(max_sweeps):
        improved = False
        for index in rng.permutation(len(names)):
            permutation = names[index]
            cost = _similarity(spec, permutation, perms, state_a, state_b).numpy()
            _, columns = linear_sum_assignment(cost, maximize=True)
            current = perms[permutation].numpy()
            old_score = cost[np.arange(len(current)), current].sum()
            new_score = cost[np.arange(len(columns)), columns].sum()
            if new_score > old_score + 1e-12 * max(1.0, abs(old_score)):
                perms[permutation] = torch.as_tensor(columns, dtype=torch.long)
                improved = True
        if not improved:
            break
    return perms


def align_to_first(model: nn.Module, states: Sequence[StateDict], seed: int = 0) -> list[StateDict]:
    """Permute every model after the first into the first one's unit order."""
    spec = permutation_spec(model)
    reference = states[0]
    aligned = [reference]
    for state in states[1:]:
        perms = weight_matching(spec, reference, state, seed=seed)
        aligned.append(apply_permutations(spec, perms, state))
    return aligned
