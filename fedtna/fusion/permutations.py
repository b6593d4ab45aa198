"""Which axes of which parameters a unit permutation reorders, and applying permutations to a state dict.

A :class:`PermutationSpec` views each parameter in a shape of its choosing (the CNN's first dense
layer as ``(out, channels, H*W)``, so a channel moves a block of columns) and names, per view
axis, the permutation acting on it: ``None`` (the axis stays), a name (the whole axis), or
segments ``((name, positions), ...)``: each permutation reorders only its positions of that axis.
Segments express residual streams whose shortcut zero-pads channels (ResNet "option A"): the
channels carried over from the previous stage must keep that stage's order, while the padded
channels may be reordered among themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

StateDict = dict[str, torch.Tensor]
Permutations = dict[str, torch.Tensor]
Segments = tuple[tuple[str, tuple[int, ...]], ...]
AxisPermutation = str | Segments | None


def segments_of(entry: AxisPermutation, size: int) -> Segments:
    """An axis entry as segments (a name covers the whole axis; None has none)."""
    if entry is None:
        return ()
    if isinstance(entry, str):
        return ((entry, tuple(range(size))),)
    return entry


@dataclass(frozen=True)
class PermutationSpec:
    """Per parameter: the shape it is viewed in and the permutation(s) on each view axis.

    ``matched``: parameters that steer the matching (default all); running statistics are permuted
    with their layer but left out of the similarity.
    """

    view_shapes: dict[str, tuple[int, ...]]
    axes: dict[str, tuple[AxisPermutation, ...]]
    matched: frozenset[str] | None = None

    def sizes(self) -> dict[str, int]:
        """Number of units each permutation reorders."""
        sizes: dict[str, int] = {}
        for name, axes in self.axes.items():
            for axis, entry in enumerate(axes):
                for permutation, positions in segments_of(entry, self.view_shapes[name][axis]):
                    if sizes.setdefault(permutation, len(positions)) != len(positions):
                        raise ValueError(f"permutation {permutation} reorders {sizes[permutation]} units in one "
                                         f"place and {len(positions)} in {name}")
        return sizes

    def users(self, permutation: str) -> list[tuple[str, int, tuple[int, ...]]]:
        """(parameter, view axis, positions) that the permutation reorders, among the matched parameters."""
        return [(name, axis, positions) for name, axes in self.axes.items()
                if self.matched is None or name in self.matched
                for axis, entry in enumerate(axes)
                for p, positions in segments_of(entry, self.view_shapes[name][axis]) if p == permutation]


def axis_index(segments: Segments, size: int, perms: Mapping[str, torch.Tensor],
               skip: str | None = None) -> torch.Tensor | None:
    """The gather index of one axis (position i takes position index[i]); None when nothing moves."""
    if not segments:
        return None
    index = torch.arange(size)
    for permutation, positions in segments:
        if permutation == skip:
            continue
        where = torch.tensor(positions, dtype=torch.long)
        index[where] = where[perms[permutation]]
    return index


def permuted_view(tensor: torch.Tensor, spec: PermutationSpec, name: str, perms: Mapping[str, torch.Tensor],
                  skip: tuple[int, str] | None = None) -> torch.Tensor:
    """``tensor`` in its view shape with every permutation applied, except ``skip = (axis, permutation)``."""
    view = tensor.reshape(spec.view_shapes[name])
    for axis, entry in enumerate(spec.axes[name]):
        size = view.shape[axis]
        index = axis_index(segments_of(entry, size), size, perms, skip[1] if skip and skip[0] == axis else None)
        if index is not None:
            view = view.index_select(axis, index)
    return view


def apply_permutations(spec: PermutationSpec, perms: Permutations, state: StateDict) -> StateDict:
    """Reorder B's units: unit i of the result is unit ``perms[p][i]`` of ``state``; the function is unchanged."""
    permuted = dict(state)
    for name in spec.axes:
        permuted[name] = permuted_view(state[name], spec, name, perms).reshape(state[name].shape)
    return permuted


def identity_permutations(spec: PermutationSpec) -> Permutations:
    """Every permutation of the spec as the identity."""
    return {name: torch.arange(size) for name, size in spec.sizes().items()}


def stack_segments(parts: Sequence[Segments], offset: int) -> Segments:
    """Segments of a previous axis layout shifted by ``offset`` positions."""
    return tuple((name, tuple(position + offset for position in positions))
                 for part in parts for name, positions in part)
