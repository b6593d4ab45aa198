"""Held-out validation data: a seeded, class-stratified part of the training set that no client trains on.

``validation_split`` draws it; ``TrainPartitioning`` maps client partitions drawn from the rest back to
indices of the whole training set. Model selection (``fedtna-report --select``) reads the server's
accuracy on it, so the test set is never used to choose a setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedtna.data.client_indices import ClientIndices
from fedtna.errors import ConfigError, out_of_range


@dataclass(frozen=True)
class ValidationSplit:
    """Sorted, disjoint training-set indices: ``train`` (partitioned among clients) and ``validation``."""

    train: np.ndarray
    validation: np.ndarray


def held_out_count(class_size: int, fraction: float) -> int:
    """Examples of one class held out: ``fraction`` of it rounded half up, leaving at least one to train on."""
    return min(int(np.floor(fraction * class_size + 0.5)), max(class_size - 1, 0))


def validation_split(labels: np.ndarray, fraction: float, seed: int) -> ValidationSplit:
    """Hold out ``fraction`` of every class (chosen at random by ``seed``); the rest is for training."""
    if not 0.0 <= fraction < 1.0:
        raise out_of_range("validation_fraction", fraction, "[0, 1)")
    label_array = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    held = [rng.permutation(members)[:held_out_count(len(members), fraction)]
            for members in (np.flatnonzero(label_array == label) for label in np.unique(label_array))]
    validation = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    if fraction > 0 and len(validation) == 0:
        raise ConfigError(f"validation_fraction={fraction} holds out no example of the {len(label_array)} training "
                          "examples; raise it or set it to 0")
    train = np.setdiff1d(np.arange(len(label_array), dtype=np.int64), validation, assume_unique=True)
    return ValidationSplit(train=train, validation=validation.astype(np.int64, copy=False))


class TrainPartitioning(ClientIndices):
    """Client partitions drawn from ``split.train`` alone, as sorted indices of the whole training set."""

    def __init__(self, partitions: Sequence[np.ndarray], train: np.ndarray) -> None:
        self._partitions = partitions
        self._train = train

    def __len__(self) -> int:
        return len(self._partitions)

    def client(self, partition_id: int) -> np.ndarray:
        rows = np.asarray(self._partitions[partition_id], dtype=np.int64)
        return self._train[rows]  # train is sorted and rows are sorted: so is the result
