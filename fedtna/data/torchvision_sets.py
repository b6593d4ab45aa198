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
from fedtna.errors import DatasetUnavailableError

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


def load_mnist(data_dir: str, download: bool = True, **_: Any) -> DatasetBundle:
    """MNIST handwritten digits (60k train / 10k test, 1x28x28)."""
    return load_torchvision("mnist", data_dir, download)


def load_fmnist(data_dir: str, download: bool = True, **_: Any) -> DatasetBundle:
    """Fashion-MNIST clothing images (60k train / 10k test, 1x28x28)."""
    return load_torchvision("fmnist", data_dir, download)


def load_cifar10(data_dir: str, download: bool = True, **_: Any) -> DatasetBundle:
    """CIFAR-10 natural images (50k train / 10k test, 3x32x32)."""
    return load_torchvision("cifar10", data_dir, download)


def load_cifar100(data_dir: str, download: bool = True, **_: Any) -> DatasetBundle:
    """CIFAR-100 natural images with the 100 fine labels (50k train / 10k test, 3x32x32)."""
    return load_torchvision("cifar100", data_dir, download)


def load_svhn(data_dir: str, download: bool = True, **_: Any) -> DatasetBundle:
    """SVHN house-number digits, label 10 mapped to digit 0 (73k train / 26k test, 3x32x32)."""
    return load_torchvision("svhn", data_dir, download)


def load_torchvision(name: str, data_dir: str, download: bool) -> DatasetBundle:
    """Read local files first (no network), and download only if they are missing and that is allowed."""
    spec = SPECS[name]
    root = Path(data_dir).expanduser()
    try:
        train, test = _open_splits(spec, root, download=False)
    except Exception as missing:  # torchvision raises RuntimeError, OSError, ValueError... on absent/corrupt files
        if not download:
            raise DatasetUnavailableError(
                f"dataset '{name}' not found in {root} (expected {spec.expected_files}) and download is disabled: "
                f"{_short_reason(missing)}; place the files there or set download: true"
            ) from None
        try:
            train, test = _open_splits(spec, root, download=True)
        except Exception as failure:  # offline downloads surface as URLError, RuntimeError, OSError...
            raise DatasetUnavailableError(
                f"dataset '{name}' not found in {root} (expected {spec.expected_files}) and download failed: "
                f"{_short_reason(failure)}; place the files there or run with internet access"
            ) from None
    return DatasetBundle(
        name=name,
        train_x=_images(train, spec),
        train_y=labels_tensor(getattr(train, spec.labels_attribute)),
        test_x=_images(test, spec),
        test_y=labels_tensor(getattr(test, spec.labels_attribute)),
        num_classes=spec.num_classes,
    )


def _open_splits(spec: TorchvisionSpec, root: Path, download: bool) -> tuple[Any, Any]:
    """Let torchvision find (or fetch) and parse the train and test files."""
    train = spec.dataset_class(str(root), download=download, **spec.train_kwargs)
    test = spec.dataset_class(str(root), download=download, **spec.test_kwargs)
    return train, test


def _images(dataset: Any, spec: TorchvisionSpec) -> torch.Tensor:
    """The dataset's raw uint8 array as normalised float32 (N, C, H, W)."""
    pixels = np.asarray(dataset.data)
    return normalise_pixels(_TO_NCHW[spec.pixel_layout](pixels), spec.mean, spec.std)


def _short_reason(exc: BaseException) -> str:
    """First and last line of an exception, trimmed, so the user error stays one line."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = " ... ".join(dict.fromkeys([lines[0], lines[-1]])) if lines else ""
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= REASON_MAX_CHARS else text[: REASON_MAX_CHARS - 3] + "..."
