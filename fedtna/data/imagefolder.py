"""A user's own images in ImageFolder layout (train/<class>/*, test/<class>/*), shaped like the benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import ImageFolder

from fedtna.data.bundle import DatasetBundle
from fedtna.data.normalise import labels_tensor, normalise_pixels
from fedtna.errors import ConfigError, DatasetUnavailableError

GRAYSCALE_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
SPLITS = ("train", "test")


def load_imagefolder(data_dir: str, **_: Any) -> DatasetBundle:
    """Channels, size and classes come from the files; statistics for normalising from the train split."""
    root = Path(str(data_dir)).expanduser()
    train_folder, test_folder = (_open_folder(root, split) for split in SPLITS)
    if train_folder.classes != test_folder.classes:
        raise ConfigError(
            f"imagefolder classes differ between {root / 'train'} {train_folder.classes} "
            f"and {root / 'test'} {test_folder.classes}; both splits need the same class folders"
        )
    mode, size = _reference_format(train_folder.samples[0][0])
    train_pixels = _read_pixels(train_folder, mode, size)
    test_pixels = _read_pixels(test_folder, mode, size)
    mean, std = channel_statistics(train_pixels)
    return DatasetBundle(
        name="imagefolder",
        train_x=normalise_pixels(train_pixels, mean, std),
        train_y=labels_tensor(train_folder.targets),
        test_x=normalise_pixels(test_pixels, mean, std),
        test_y=labels_tensor(test_folder.targets),
        num_classes=len(train_folder.classes),
    )


def _open_folder(root: Path, split: str) -> ImageFolder:
    """Index one split with torchvision, turning a missing or empty layout into a one-line error."""
    layout = f"{root}/train/<class>/<image> and {root}/test/<class>/<image>"
    split_dir = root / split
    if not split_dir.is_dir():
        raise DatasetUnavailableError(f"imagefolder directory {split_dir} does not exist; expected {layout}")
    try:
        return ImageFolder(str(split_dir))
    except FileNotFoundError as exc:
        raise DatasetUnavailableError(f"imagefolder {split_dir} is unusable ({exc}); expected {layout}") from None


def _reference_format(first_image: str) -> tuple[str, tuple[int, int]]:
    """The first train image fixes the mode (L or RGB) and (width, height) every image is converted to."""
    with Image.open(first_image) as image:
        mode = "L" if image.mode in GRAYSCALE_MODES else "RGB"
        return mode, image.size


def _read_pixels(folder: ImageFolder, mode: str, size: tuple[int, int]) -> np.ndarray:
    """All images of a split as one uint8 (N, C, H, W) array in the reference mode and size."""
    arrays = []
    for path, _label in folder.samples:
        with Image.open(path) as image:
            converted = image.convert(mode)
            if converted.size != size:
                converted = converted.resize(size, Image.Resampling.BILINEAR)
            arrays.append(np.asarray(converted, dtype=np.uint8))
    stacked = np.stack(arrays)
    return stacked[:, None, :, :] if mode == "L" else stacked.transpose(0, 3, 1, 2)


def channel_statistics(pixels: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of 0..255 (N, C, H, W) pixels on the [0, 1] scale; flat channels get std 1."""
    scaled = torch.as_tensor(pixels).to(torch.float64) / 255.0
    mean = scaled.mean(dim=(0, 2, 3))
    std = scaled.std(dim=(0, 2, 3), correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple(mean.tolist()), tuple(std.tolist())
