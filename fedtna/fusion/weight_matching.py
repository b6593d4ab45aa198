"""Post-hoc permutation alignment by weight matching (Ainsworth et al., Git Re-Basin); no Flower.

Hidden units of a network can be permuted without changing its function. Weight matching
finds, permutation by permutation, the reordering of model B's units that maximises the summed
inner products of B's weights with model A's (every weight the permutation touches), solving
one linear assignment at a time and sweeping until nothing changes. Which weights each
permutation touches comes from the model's spec (``fedtna.fusion.specs``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from fedtna.fusion.permutations import (
    Permutations,
    PermutationSpec,
    StateDict,
    apply_permutations,
    identity_permutations,
    permuted_view,
)
from fedtna.fusion.specs import permutation_spec, supported_names, supports

__all__ = ["align_to_first", "apply_permutations", "permutation_spec", "supported_names", "supports",
           "weight_matching"]


def _similarity(spec: PermutationSpec, permutation: str, perms: Permutations,
                state_a: StateDict, state_b: StateDict) -> torch.Tensor:
    """cost[i, j] = inner product of A's unit i with B's unit j over every matched weight touching them."""
    size = spec.sizes()[permutation]
    cost = torch.zeros(size, size, dtype=torch.float64)
    for name, axis, positions in spec.users(permutation):
        where = torch.tensor(positions, dtype=torch.long)
        view_a = state_a[name].reshape(spec.view_shapes[name]).to(torch.float64)
        view_b = permuted_view(state_b[name], spec, name, perms, skip=(axis, permutation)).to(torch.float64)
        rows_a = view_a.movedim(axis, 0)[where].reshape(size, -1)
        rows_b = view_b.movedim(axis, 0)[where].reshape(size, -1)
        cost += rows_a @ rows_b.T
    return cost


def weight_matching(spec: PermutationSpec, state_a: StateDict, state_b: StateDict,
                    max_sweeps: int = 100, seed: int = 0) -> Permutations:
    """Permutations aligning B to A by coordinate ascent over permutations (random order per sweep)."""
    perms = identity_permutations(spec)
    rng = np.random.default_rng(seed)
    names = sorted(perms)
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
