"""Loaders read tiny files in the real on-disk formats through torchvision's own reading code."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision
from omegaconf import OmegaConf
from PIL import Image

from fedtna.data import DatasetBundle, load_dataset
from fedtna.data.imagefolder import load_imagefolder
from fedtna.data.packaged import load_mnist5k, stratified_split
from fedtna.data.torchvision_sets import load_cifar10, load_cifar100, load_fmnist, load_mnist, load_svhn
from fedtna.errors import ConfigError, DatasetUnavailableError
from tests.cifar_format import cifar_rows, write_pickle

CONF_DIR = Path(__file__).resolve().parents[1] / "fedtna" / "conf"
N_TRAIN, N_TEST = 12, 6


# ---------------------------------------------------------------- writers of the real file formats


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX file: big-endian magic (0x08 = unsigned byte, then ndim) and big-endian int32 dimensions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def mnist_like_images(count: int, seed: int) -> np.ndarray:
    """Random 28x28 digits whose first pixel is white and second black, for exact value checks."""
    images = np.random.default_rng(seed).integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = 255
    images[:, 0, 1] = 0
    return images


def write_mnist_format(root: Path, folder: str) -> None:
    """The four uncompressed idx files torchvision's MNIST/FashionMNIST read from <folder>/raw."""
    raw = root / folder / "raw"
    write_idx(raw / "train-images-idx3-ubyte", mnist_like_images(N_TRAIN, 0))
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(N_TRAIN) % 10)
    write_idx(raw / "t10k-images-idx3-ubyte", mnist_like_images(N_TEST, 1))
    write_idx(raw / "t10k-labels-idx1-ubyte", (np.arange(N_TEST) + 3) % 10)


def write_cifar10(root: Path) -> None:
    """Five train batches of two images, one test batch of six, and batches.meta."""
    folder = root / "cifar-10-batches-py"
    for batch in range(1, 6):
        labels = [(2 * batch) % 10, (2 * batch + 1) % 10]
        write_pickle(folder / f"data_batch_{batch}", {"data": cifar_rows(2, batch), "labels": labels})
    write_pickle(folder / "test_batch", {"data": cifar_rows(N_TEST, 9), "labels": list(range(N_TEST))})
    write_pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})


def write_cifar100(root: Path) -> None:
    """One train and one test pickle with fine and coarse labels, plus meta."""
    folder = root / "cifar-100-python"
    train_fine = [0, 99, 50, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    write_pickle(folder / "train", {"data": cifar_rows(N_TRAIN, 3), "fine_labels": train_fine,
                                    "coarse_labels": [label // 5 for label in train_fine]})
    write_pickle(folder / "test", {"data": cifar_rows(N_TEST, 4), "fine_labels": [98] * N_TEST,
                                   "coarse_labels": [19] * N_TEST})
    write_pickle(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                                   "coarse_label_names": [f"c{i}" for i in range(20)]})


def write_svhn(root: Path) -> None:
    """MATLAB files with X as (32, 32, 3, N) and y as (N, 1) where 10 stands for digit 0."""
    root.mkdir(parents=True, exist_ok=True)
    for filename, count, seed in (("train_32x32.mat", N_TRAIN, 5), ("test_32x32.mat", N_TEST, 6)):
        images = np.random.default_rng(seed).integers(0, 256, size=(32, 32, 3, count), dtype=np.uint8)
        images[2, 5, 1, :] = 255  # green at row 2, column 5
        labels = (np.arange(count) % 10 + 1).reshape(-1, 1).astype(np.uint8)  # 1..10
        scipy.io.savemat(str(root / filename), {"X": images, "y": labels})


@pytest.fixture
def skip_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake files cannot match torchvision's checksums: skip only the md5 comparison, not the file checks."""
    monkeypatch.setattr(torchvision.datasets.utils, "check_md5", lambda fpath, md5, **kwargs: True)


# ---------------------------------------------------------------- torchvision datasets

LoaderCase = tuple[Callable[..., DatasetBundle], Callable[[Path], None], type, str]

CASES: dict[str, LoaderCase] = {
    "mnist": (load_mnist, lambda root: write_mnist_format(root, "MNIST"), torchvision.datasets.MNIST,
              "MNIST/raw/train-images-idx3-ubyte"),
    "fmnist": (load_fmnist, lambda root: write_mnist_format(root, "FashionMNIST"),
               torchvision.datasets.FashionMNIST, "FashionMNIST/raw/train-images-idx3-ubyte"),
    "cifar10": (load_cifar10, write_cifar10, torchvision.datasets.CIFAR10, "cifar-10-batches-py/data_batch_1..5"),
    "cifar100": (load_cifar100, write_cifar100, torchvision.datasets.CIFAR100, "cifar-100-python/train"),
    "svhn": (load_svhn, write_svhn, torchvision.datasets.SVHN, "train_32x32.mat"),
}


def test_mnist_reads_idx_files(tmp_path: Path) -> None:
    write_mnist_format(tmp_path, "MNIST")
    bundle = load_mnist(str(tmp_path), download=False)
    assert bundle.name == "mnist" and bundle.num_classes == 10
    assert bundle.train_x.shape == (N_TRAIN, 1, 28, 28) and bundle.test_x.shape == (N_TEST, 1, 28, 28)
    assert bundle.train_x.dtype == torch.float32 and bundle.train_y.dtype == torch.int64
    assert bundle.train_y.tolist() == [i % 10 for i in range(N_TRAIN)]
    assert bundle.test_y.tolist() == [(i + 3) % 10 for i in range(N_TEST)]
    assert bundle.train_x[0, 0, 0, 0].item() == pytest.approx((1.0 - 0.1307) / 0.3081, abs=1e-5)
    assert bundle.test_x[3, 0, 0, 1].item() == pytest.approx(-0.1307 / 0.3081, abs=1e-5)
    raw = mnist_like_images(N_TRAIN, 0)
    assert bundle.train_x[5, 0, 17, 9].item() == pytest.approx((raw[5, 17, 9] / 255 - 0.1307) / 0.3081, abs=1e-5)


def test_fmnist_uses_its_own_folder_and_statistics(tmp_path: Path) -> None:
    write_mnist_format(tmp_path, "FashionMNIST")
    bundle = load_fmnist(str(tmp_path), download=False)
    assert bundle.input_shape == (1, 28, 28) and len(bundle.train_y) == N_TRAIN
    assert bundle.train_x[0, 0, 0, 0].item() == pytest.approx((1.0 - 0.2860) / 0.3530, abs=1e-5)
    assert bundle.train_x[0, 0, 0, 1].item() == pytest.approx(-0.2860 / 0.3530, abs=1e-5)


def test_cifar10_reads_pickled_batches_in_order(tmp_path: Path, skip_md5: None) -> None:
    write_cifar10(tmp_path)
    bundle = load_cifar10(str(tmp_path), download=False)
    assert bundle.train_x.shape == (10, 3, 32, 32) and bundle.test_x.shape == (N_TEST, 3, 32, 32)
    assert bundle.train_y.tolist() == [2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert bundle.test_y.tolist() == list(range(N_TEST))
    assert bundle.train_x[0, 0, 0, 0].item() == pytest.approx(1.0)  # red 255 -> (1 - 0.5) / 0.5
    assert bundle.train_x[0, 1, 0, 0].item() == pytest.approx(-1.0)  # green 0
    assert bundle.train_x[0, 2, 1, 1].item() == pytest.approx(-0.6)  # blue 51 -> (0.2 - 0.5) / 0.5


def test_cifar100_uses_fine_labels(tmp_path: Path, skip_md5: None) -> None:
    write_cifar100(tmp_path)
    bundle = load_cifar100(str(tmp_path), download=False)
    assert bundle.num_classes == 100 and bundle.input_shape == (3, 32, 32)
    assert bundle.train_y.tolist()[:3] == [0, 99, 50] and bundle.test_y.tolist() == [98] * N_TEST
    assert bundle.test_x[4, 2, 1, 1].item() == pytest.approx(-0.6)


def test_svhn_reads_mat_files_and_maps_ten_to_zero(tmp_path: Path, skip_md5: None) -> None:
    write_svhn(tmp_path)
    bundle = load_svhn(str(tmp_path), download=False)
    assert bundle.train_x.shape == (N_TRAIN, 3, 32, 32) and bundle.test_x.shape == (N_TEST, 3, 32, 32)
    assert bundle.train_y.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    assert bundle.train_x[0, 1, 2, 5].item() == pytest.approx(1.0)  # X[row 2, col 5, green] = 255
    raw = np.random.default_rng(5).integers(0, 256, size=(32, 32, 3, N_TRAIN), dtype=np.uint8)
    assert bundle.train_x[7, 2, 20, 3].item() == pytest.approx((raw[20, 3, 2, 7] / 255 - 0.5) / 0.5, abs=1e-6)


def test_data_dir_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write_mnist_format(tmp_path / "data", "MNIST")
    assert len(load_mnist("~/data", download=False).train_y) == N_TRAIN


@pytest.mark.parametrize("name", sorted(CASES))
def test_present_files_never_trigger_download(
    name: str, tmp_path: Path, skip_md5: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader, write_files, dataset_class, _ = CASES[name]
    write_files(tmp_path)
    calls: list[str] = []
    monkeypatch.setattr(dataset_class, "download", lambda self: calls.append("download"))
    bundle = loader(str(tmp_path), download=True)
    assert calls == [] and bundle.name == name


@pytest.mark.parametrize("name", sorted(CASES))
def test_missing_files_without_download_name_files_and_directory(name: str, tmp_path: Path) -> None:
    loader, _, _, expected_file = CASES[name]
    with pytest.raises(DatasetUnavailableError) as caught:
        loader(str(tmp_path), download=False)
    message = str(caught.value)
    assert f"'{name}'" in message and str(tmp_path) in message and expected_file in message
    assert "download is disabled" in message and "\n" not in message


@pytest.mark.parametrize("name", sorted(CASES))
def test_failed_download_is_reported_in_one_line(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader, _, dataset_class, expected_file = CASES[name]

    def offline(self: object) -> None:
        raise OSError("offline")

    monkeypatch.setattr(dataset_class, "download", offline)
    with pytest.raises(DatasetUnavailableError) as caught:
        loader(str(tmp_path), download=True)
    message = str(caught.value)
    assert "download failed: OSError: offline" in message
    assert str(tmp_path) in message and expected_file in message and "\n" not in message


def test_corrupt_checksum_counts_as_missing(tmp_path: Path) -> None:
    write_cifar10(tmp_path)  # real md5 check left on: the fake files cannot match
    with pytest.raises(DatasetUnavailableError, match="not found or corrupted"):
        load_cifar10(str(tmp_path), download=False)


# ---------------------------------------------------------------- imagefolder


def write_png(path: Path, mode: str, size: tuple[int, int], value: int | tuple[int, ...]) -> None:
    """One solid-colour image (size is PIL's (width, height))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def test_imagefolder_grayscale_infers_channels_size_classes(tmp_path: Path) -> None:
    for index, value in enumerate((0, 100, 200)):
        write_png(tmp_path / "train" / "cat" / f"{index}.png", "L", (8, 6), value)
        write_png(tmp_path / "train" / "dog" / f"{index}.png", "L", (8, 6), 255 - value)
    write_png(tmp_path / "test" / "cat" / "a.png", "L", (16, 12), 100)  # other size: resized
    write_png(tmp_path / "test" / "dog" / "a.png", "RGB", (8, 6), (10, 10, 10))  # other mode: converted
    bundle = load_imagefolder(str(tmp_path))
    assert bundle.input_shape == (1, 6, 8) and bundle.num_classes == 2
    assert bundle.train_y.tolist() == [0, 0, 0, 1, 1, 1] and bundle.test_y.tolist() == [0, 1]
    assert bundle.test_x.shape == (2, 1, 6, 8)
    train_pixels = np.array([0, 100, 200, 255, 155, 55], dtype=np.float64) / 255
    mean, std = train_pixels.mean(), train_pixels.std()
    assert bundle.train_x.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert bundle.test_x[0, 0, 3, 4].item() == pytest.approx((100 / 255 - mean) / std, abs=1e-4)
    assert bundle.test_x[1, 0, 0, 0].item() == pytest.approx((10 / 255 - mean) / std, abs=1e-4)


def test_imagefolder_rgb_keeps_three_channels_with_own_statistics(tmp_path: Path) -> None:
    for split, count in (("train", 2), ("test", 1)):
        for index in range(count):
            write_png(tmp_path / split / "a" / f"{index}.png", "RGB", (5, 4), (255, 0, 40 * index))
            write_png(tmp_path / split / "b" / f"{index}.png", "RGB", (5, 4), (0, 0, 100))
    bundle = load_imagefolder(str(tmp_path))
    assert bundle.input_shape == (3, 4, 5) and bundle.num_classes == 2
    red = bundle.train_x[:, 0]
    assert red.mean().item() == pytest.approx(0.0, abs=1e-5) and red.std(correction=0).item() == pytest.approx(1.0)
    assert torch.all(bundle.train_x[:, 1] == 0)  # flat green channel: std falls back to 1, mean 0 removed
    assert bundle.test_x[0, 0, 0, 0].item() == pytest.approx(1.0)  # red 255 with train mean 0.5, std 0.5


def test_imagefolder_mismatched_classes_is_config_error(tmp_path: Path) -> None:
    write_png(tmp_path / "train" / "cat" / "0.png", "L", (4, 4), 0)
    write_png(tmp_path / "train" / "dog" / "0.png", "L", (4, 4), 0)
    write_png(tmp_path / "test" / "cat" / "0.png", "L", (4, 4), 0)
    write_png(tmp_path / "test" / "emu" / "0.png", "L", (4, 4), 0)
    with pytest.raises(ConfigError, match=r"classes differ .*\['cat', 'dog'\].*\['cat', 'emu'\]"):
        load_imagefolder(str(tmp_path))


def test_imagefolder_missing_split_names_layout(tmp_path: Path) -> None:
    write_png(tmp_path / "train" / "cat" / "0.png", "L", (4, 4), 0)
    with pytest.raises(DatasetUnavailableError) as caught:
        load_imagefolder(str(tmp_path))
    assert f"{tmp_path / 'test'} does not exist" in str(caught.value)
    assert f"{tmp_path}/train/<class>/<image>" in str(caught.value)


def test_imagefolder_without_images_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "test" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetUnavailableError, match="Found no valid file for the classes cat"):
        load_imagefolder(str(tmp_path))


# ---------------------------------------------------------------- mnist5k


def test_mnist5k_shapes_values_and_stratification() -> None:
    bundle = load_mnist5k()
    assert bundle.train_x.shape == (4000, 1, 28, 28) and bundle.test_x.shape == (1000, 1, 28, 28)
    assert bundle.train_x.dtype == torch.float32 and bundle.test_y.dtype == torch.int64
    assert bundle.train_x.min().item() == pytest.approx(-0.1307 / 0.3081, abs=1e-5)
    assert bundle.train_x.max().item() == pytest.approx((1 - 0.1307) / 0.3081, abs=1e-5)
    train_counts = np.bincount(bundle.train_y.numpy(), minlength=10)
    test_counts = np.bincount(bundle.test_y.numpy(), minlength=10)
    assert np.all(train_counts + test_counts == 500)
    assert np.all(np.abs(test_counts - 0.2 * (train_counts + test_counts)) <= 1)


def test_mnist5k_split_is_deterministic_per_seed() -> None:
    first = load_mnist5k(split_seed=0)
    again = load_mnist5k(test_fraction=0.2, split_seed=0, name="mnist5k", num_classes=10)
    other = load_mnist5k(split_seed=1)
    assert torch.equal(first.test_x, again.test_x)
    assert not torch.equal(first.test_x, other.test_x)
    assert torch.equal(torch.sort(first.test_y).values, torch.sort(other.test_y).values)


def test_stratified_split_is_seeded_and_disjoint() -> None:
    labels = np.repeat(np.arange(3), [10, 7, 4])
    train_a, test_a = stratified_split(labels, 0.25, seed=3)
    train_b, test_b = stratified_split(labels, 0.25, seed=3)
    _, test_c = stratified_split(labels, 0.25, seed=4)
    assert np.array_equal(test_a, test_b) and np.array_equal(train_a, train_b)
    assert not np.array_equal(test_a, test_c)
    assert np.array_equal(np.sort(np.concatenate([train_a, test_a])), np.arange(len(labels)))
    assert np.bincount(labels[test_a]).tolist() == [2, 2, 1]  # round(0.25 * [10, 7, 4])


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, "0.2"])
def test_mnist5k_rejects_bad_test_fraction(fraction: object) -> None:
    with pytest.raises(ConfigError, match=rf"dataset.test_fraction={fraction!r} must be .* between 0 and 1"):
        load_mnist5k(test_fraction=fraction)  # type: ignore[arg-type]


# ---------------------------------------------------------------- configs and load_dataset


def test_dataset_yaml_loads_through_interpolated_data_dir(tmp_path: Path, skip_md5: None) -> None:
    write_cifar10(tmp_path)
    dataset_cfg = OmegaConf.load(CONF_DIR / "dataset" / "cifar10.yaml")
    cfg = OmegaConf.create({"data_dir": str(tmp_path), "dataset": dataset_cfg})
    bundle = load_dataset(cfg.dataset)
    assert bundle.name == "cifar10" and bundle.train_x.shape == (10, 3, 32, 32)


def test_mnist5k_yaml_loads() -> None:
    bundle = load_dataset(OmegaConf.load(CONF_DIR / "dataset" / "mnist5k.yaml"))
    assert bundle.num_classes == 10 and len(bundle.train_y) + len(bundle.test_y) == 5000


def test_imagefolder_yaml_requires_data_dir() -> None:
    with pytest.raises(ConfigError, match=r"dataset.data_dir is required but was left as '\?\?\?'"):
        load_dataset(OmegaConf.load(CONF_DIR / "dataset" / "imagefolder.yaml"))
    with pytest.raises(ConfigError, match=r"dataset.data_dir is required"):
        load_dataset({"_target_": "fedtna.data.imagefolder.load_imagefolder", "data_dir": "???"})


def test_load_dataset_checks_declared_num_classes() -> None:
    with pytest.raises(ConfigError, match=r"dataset.num_classes=7 but the mnist5k data has 10 classes"):
        load_dataset({"_target_": "fedtna.data.packaged.load_mnist5k", "num_classes": 7})


@pytest.mark.parametrize(
    ("cfg", "pattern"),
    [
        ({"name": "x"}, r"dataset config has no _target_ key"),
        ({"_target_": "fedtna.data.nowhere.load"}, r"cannot import module 'fedtna.data.nowhere'"),
        ({"_target_": "fedtna.data.packaged.load_nothing"}, r"has no callable 'load_nothing'"),
        ({"_target_": "fedtna.data.torchvision_sets.load_mnist"}, r"missing a required argument: 'data_dir'"),
    ],
)
def test_load_dataset_rejects_bad_config(cfg: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_dataset(cfg)


def test_every_dataset_yaml_names_a_loader_and_its_classes() -> None:
    expected = {"mnist5k": 10, "mnist": 10, "fmnist": 10, "cifar10": 10, "cifar100": 100, "svhn": 10,
                "imagefolder": None}
    for name, num_classes in expected.items():
        cfg = OmegaConf.load(CONF_DIR / "dataset" / f"{name}.yaml")
        assert cfg.name == name and cfg.num_classes == num_classes
        module_name, function_name = cfg._target_.rsplit(".", 1)
        module = __import__(module_name, fromlist=[function_name])
        assert callable(getattr(module, function_name))
        if name not in {"mnist5k", "imagefolder"}:
            assert OmegaConf.to_container(cfg)["data_dir"] == "${data_dir}" and cfg.download is True
