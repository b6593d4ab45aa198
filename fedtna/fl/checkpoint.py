"""Atomic per-round checkpoints of a federated run, and what exact resumption needs from them.

A checkpoint holds the global arrays after a round, that round's number, the recorder's
rows and the server optimizer's state (FedAdam/FedYogi/FedAdagrad moments, FedAvgM's
momentum). Everything else a round needs is a pure function of the run seed and the round
number (client sample, round seed, mask, data order, learning-rate decay), so the rounds
after a resumption are the rounds an uninterrupted run would have had.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CHECKPOINT_FILE = "checkpoint.pkl"
# Attributes of Flower's server optimizers that carry state from one round to the next.
SERVER_STATE_ATTRIBUTES = ("m_t", "v_t", "momentum_vector", "current_arrays")


@dataclass
class Checkpoint:
    """The state of a run after ``server_round``."""

    server_round: int
    arrays: dict[str, np.ndarray]
    rows: list[dict[str, Any]]
    server_state: dict[str, Any] = field(default_factory=dict)


def capture_server_state(strategy: object) -> dict[str, Any]:
    """The server optimizer's round-to-round state (empty for plain averaging)."""
    return {name: getattr(strategy, name) for name in SERVER_STATE_ATTRIBUTES
            if getattr(strategy, name, None) is not None}


def restore_server_state(strategy: object, state: dict[str, Any]) -> None:
    """Put a captured state back into a freshly built strategy."""
    for name, value in state.items():
        setattr(strategy, name, value)


def save_checkpoint(output_dir: str | Path, checkpoint: Checkpoint) -> Path:
    """Write the checkpoint atomically: a temporary file in the same folder, then a rename."""
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".checkpoint-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            pickle.dump(checkpoint, stream, protocol=pickle.HIGHEST_PROTOCOL)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, directory / CHECKPOINT_FILE)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return directory / CHECKPOINT_FILE


def load_checkpoint(output_dir: str | Path) -> Checkpoint | None:
    """The run folder's checkpoint, or None when it has none."""
    path = Path(output_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    with path.open("rb") as stream:
        checkpoint = pickle.load(stream)  # a file fedtna wrote into the user's own run folder
    if not isinstance(checkpoint, Checkpoint):
        raise TypeError(f"{path} is not a fedtna checkpoint")
    return checkpoint
