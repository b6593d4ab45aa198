"""Tiny files in CIFAR's real on-disk format (python pickles), shared by the data and preset tests."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def cifar_rows(count: int, seed: int) -> np.ndarray:
    """(N, 3072) uint8 rows laid out as CIFAR stores them: 1024 red, 1024 green, 1024 blue values."""
    rows = np.random.default_rng(seed).integers(0, 256, size=(count, 3072), dtype=np.uint8)
    rows[:, 0] = 255  # red at (0, 0)
    rows[:, 1024] = 0  # green at (0, 0)
    rows[:, 2048 + 32 + 1] = 51  # blue at (1, 1)
    return rows


def write_pickle(path: Path, content: dict) -> None:
    """CIFAR's python pickles, protocol 2 (torchvision unpickles them with encoding='latin1')."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(content, protocol=2))
