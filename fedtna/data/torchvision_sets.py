"""Standard benchmarks read by torchvision's own classes, held whole in memory as normalised tensors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import datasets

from fedtna.data.bundle import DatasetBundle
from fedtna.data.normalise import labels_tensor, normalise_pixels
from fedtna.errors import ConfigError, DatasetUnavailableError
from fedtna.masks import derive_seed

REASON_MAX_CHARS = 160


@dataclass(frozen=True)
class TorchvisionSpec:
    """What differs between the torchvision datasets: class, files, split arguments, layout, statistics."""

    dataset_class: type
    expected_files: str
    train_kwargs: dict[str, Any]
    test_kwargs: dict[str, Any]
    pixel_layout: str  # axis order of the class's `.data`: "NHW", "NHWC" or "NCHW"
    labels_attribute: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


_MNIST_FILES = "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"
_BY_TRAIN_FLAG = ({"train": True}, {"train": False})
_BY_SPLIT_NAME = ({"split": "train"}, {"split": "test"})
_HALF = (0.5, 0.5, 0.5)

SPECS: dict[str, TorchvisionSpec] = {
    "mnist": TorchvisionSpec(
        datasets.MNIST, f"MNIST/raw/{_MNIST_FILES}", *_BY_TRAIN_FLAG, "NHW", "targets", 10, (0.1307,), (0.3081,)
    ),
    "fmnist": TorchvisionSpec(
        datasets.FashionMNIST, f"FashionMNIST/raw/{_MNIST_FILES}", *_BY_TRAIN_FLAG, "NHW", "targets", 10,
        (0.2860,), (0.3530,),
    ),
    "cifar10": TorchvisionSpec(
        datasets.CIFAR10, "cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta", *_BY_TRAIN_FLAG,
        "NHWC", "targets", 10, _HALF, _HALF,
    ),
    "cifar100": TorchvisionSpec(
        datasets.CIFAR100, "cifar-100-python/train, test, meta", *_BY_TRAIN_FLAG, "NHWC", "targets", 100,
        _HALF, _HALF,
    ),
    "svhn": TorchvisionSpec(
        datasets.SVHN, "train_32x32.mat, test_32x32.mat", *_BY_SPLIT_NAME, "NCHW", "labels", 10, _HALF, _HALF
    ),
}

_TO_NCHW = {"NHW": lambda x: x[:, None, :, :], "NHWC": lambda x: x.transpose(0, 3, 1, 2), "NCHW": lambda x: x}


# Every loader below also takes num_train / num_test (None = all) and subset_seed: a seeded,
# class-stratified subset of each split, so a CPU user can try a preset on a few thousand images.


def load_mnist(data_dir: str, download: bool = True, **subset: Any) -> DatasetBundle:
    """MNIST handwritten digits (60k train / 10k test, 1x28x28)."""
    return load_torchvision("mnist", data_dir, download, **_subset_arguments(subset))


def load_fmnist(data_dir: str, download: bool = True, **subset: Any) -> DatasetBundle:
    """Fashion-MNIST clothing images (60k train / 10k test, 1x28x28)."""
    return load_torchvision("fmnist", data_dir, download, **_subset_arguments(subset))


def load_cifar10(data_dir: str, download: bool = True, **subset: Any) -> DatasetBundle:
    """CIFAR-10 natural images (50k train / 10k test, 3x32x32)."""
    return load_torchvision("cifar10", data_dir, download, **_subset_arguments(subset))


def load_cifar100(data_dir: str, download: bool = True, **subset: Any) -> DatasetBundle:
    """CIFAR-100 natural images with the 100 fine labels (50k train / 10k test, 3x32x32)."""
    return load_torchvision("cifar100", data_dir, download, **_subset_arguments(subset))


def load_svhn(data_dir: str, download: bool = True, **subset: Any) -> DatasetBundle:
    """SVHN house-number digits, label 10 mapped to digit 0 (73k train / 26k test, 3x32x32)."""
    return load_torchvision("svhn", data_dir, download, **_subset_arguments(subset))


def _subset_arguments(options: dict[str, Any]) -> dict[str, Any]:
    """The subsetting keys of a dataset node; other keys (name, num_classes, ...) are not the loader's."""
    return {key: options[key] for key in ("num_train", "num_test", "subset_seed") if key in options}


def load_torchvision(
    name: str,
    data_dir: str,
    download: bool,
    num_train: int | None = None,
    num_test: int | None = None,
    subset_seed: int = 0,
) -> DatasetBundle:
    """Read local files first (no network), and download only if they are missing and that is allowed.

    ``num_train`` / ``num_test`` keep a seeded, class-stratified subset of that split (None = all).
    """
    for key, value in (("num_train", num_train), ("num_test", num_test)):
        if value is not None and not (_is_int(value) and value >= 1):
            raise ConfigError(f"dataset.{key}={value!r} must be null (all examples) or an integer >= 1")
    if not (_is_int(subset_seed) and subset_seed >= 0):
        raise ConfigError(f"dataset.subset_seed={subset_seed!r} must be a non-negative integer")
    spec = SPECS[name]
    root = Path(data_dir).expanduser()
    try:
        train, test = _open_splits(spec, root, download=False)
    except Exception as missing:  # noqa: BLE001 - absent/corrupt files raise RuntimeError, OSError, ValueError...
        if not download:
            raise DatasetUnavailableError(
                f"dataset '{name}' not found in {root} (expected {spec.expected_files}) and download is disabled: "
                f"{_short_reason(missing)}; place the files there or set download: true"
            ) from None
        try:
            train, test = _open_splits(spec, root, download=True)
        except Exception as failure:  # noqa: BLE001 - offline downloads surface as URLError, RuntimeError, OSError...
            raise DatasetUnavailableError(
                f"dataset '{name}' not found in {root} (expected {spec.expected_files}) and download failed: "
                f"{_short_reason(failure)}; place the files there or run with internet access"
            ) from None
    train_x, train_y = _split(train, spec, name, "num_train", num_train, derive_seed(subset_seed, "train"))
    test_x, test_y = _split(test, spec, name, "num_test", num_test, derive_seed(subset_seed, "test"))
    return DatasetBundle(name=name, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                         num_classes=spec.num_classes)


def _split(dataset: Any, spec: TorchvisionSpec, name: str, key: str, count: int | None,
           seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised images and labels of one split, or of its stratified subset of ``count`` examples."""
    pixels = _TO_NCHW[spec.pixel_layout](np.asarray(dataset.data))
    labels = np.asarray(getattr(dataset, spec.labels_attribute))
    if count is not None:
        if count > len(labels):
            raise ConfigError(f"dataset.{key}={count} is more than the {len(labels)} examples of that {name} split; "
                              "lower it or set it to null (all)")
        keep = stratified_subset(labels, count, seed % (2**32))
        pixels, labels = pixels[keep], labels[keep]
    return normalise_pixels(pixels, spec.mean, spec.std), labels_tensor(labels)


def stratified_subset(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Sorted indices of ``count`` examples, each class's share of them within one of its share of ``labels``.

    A seeded shuffle fixes the order within each class; the i-th (from 0) example of a class of
    size n gets the key (i + 0.5) / n, and the ``count`` smallest keys are kept (ties in shuffled
    order). Every class is thus taken in proportion to its size, rounded.
    """
    order = np.random.default_rng(seed).permutation(len(labels))
    _, classes, sizes = np.unique(np.asarray(labels)[order], return_inverse=True, return_counts=True)
    by_class = np.argsort(classes, kind="stable")
    first_of_class = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(len(order), dtype=np.int64)
    rank[by_class] = np.arange(len(order)) - first_of_class[classes[by_class]]
    keys = (rank + 0.5) / sizes[classes]
    return np.sort(order[np.argsort(keys, kind="stable")[:count]])


def _is_int(value: Any) -> bool:
    """Python or numpy integers, but not bools (YAML `true` must not count as 1)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _open_splits(spec: TorchvisionSpec, root: Path, download: bool) -> tuple[Any, Any]:
    """Let torchvision find (or fetch) and parse the train and test files."""
    train = spec.dataset_class(str(root), download=download, **spec.train_kwargs)
    test = spec.dataset_class(str(root), download=download, **spec.test_kwargs)
    return train, test


def _short_reason(exc: BaseException) -> str:
    """First and last line of an exception, trimmed, so the user error stays one line."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = " ... ".join(dict.fromkeys([lines[0], lines[-1]])) if lines else ""
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= REASON_MAX_CHARS else text[: REASON_MAX_CHARS - 3] + "..."
