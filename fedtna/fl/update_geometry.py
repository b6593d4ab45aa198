"""How far clients move and how much they agree: the per-round client-drift metrics.

For the float parameters of the model sent (``w``), the client models ``w_k`` with example
weights ``p_k`` and their weighted mean ``w_bar``:

- ``update_norm``     = sum_k p_k ||w_k - w||                 (how far a client moves)
- ``update_spread``   = sqrt(sum_k p_k ||w_k - w_bar||^2)     (disagreement between clients: client drift)
- ``update_agreement``= ||w_bar - w|| / update_norm           (1 = all clients move the same way, ~0 = cancel)
- ``global_norm``     = ||new global model||                  (shrinks under weight decay)

All in float64, in the given (partition) order, so they are reproducible like the aggregate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class UpdateGeometry:
    """One round's client-drift metrics (see the module docstring)."""

    update_norm: float
    update_spread: float
    update_agreement: float
    global_norm: float

    def as_metrics(self) -> dict[str, float]:
        """The metrics as they go into ``metrics.jsonl``."""
        return asdict(self)


def update_geometry(sent: Mapping[str, np.ndarray], clients: Sequence[Mapping[str, np.ndarray]],
                    weights: Sequence[float] | np.ndarray, new_global: Mapping[str, np.ndarray]) -> UpdateGeometry:
    """The drift metrics of one round; ``weights`` need not be normalised."""
    p = np.asarray(weights, dtype=np.float64)
    p = p / p.sum()
    floats = [key for key, value in sent.items() if np.issubdtype(np.asarray(value).dtype, np.floating)]
    moved_sq = np.zeros(len(clients))
    spread_sq = np.zeros(len(clients))
    mean_move_sq = 0.0
    global_sq = 0.0
    for key in floats:
        base = np.asarray(sent[key], dtype=np.float64)
        deltas = np.stack([np.asarray(client[key], dtype=np.float64) - base for client in clients])
        deltas = deltas.reshape(len(clients), -1)
        mean_delta = p @ deltas
        moved_sq += np.einsum("ij,ij->i", deltas, deltas)
        centred = deltas - mean_delta
        spread_sq += np.einsum("ij,ij->i", centred, centred)
        mean_move_sq += float(mean_delta @ mean_delta)
        new = np.asarray(new_global[key], dtype=np.float64).ravel()
        global_sq += float(new @ new)
    update_norm = float(p @ np.sqrt(moved_sq))
    agreement = float(np.sqrt(mean_move_sq) / update_norm) if update_norm > 0 else 1.0
    return UpdateGeometry(update_norm=update_norm, update_spread=float(np.sqrt(p @ spread_sq)),
                          update_agreement=agreement, global_norm=float(np.sqrt(global_sq)))
