"""The paper presets compose to their documented values and run end to end on files in the real CIFAR format.

Also: the drift preset's weight decay, and the seeded, stratified subsetting of torchvision datasets
(``dataset.num_train`` / ``dataset.num_test``) that lets a CPU user try the presets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from fedtna.config.checks import check_run_config
from fedtna.config.entry import compose_run_config
from fedtna.data.torchvision_sets import load_cifar10, stratified_subset
from fedtna.errors import ConfigError
from fedtna.fl.local_data import dataset_bundle
from fedtna.fl.server_app import run_server
from tests.cifar_format import cifar_rows, write_pickle
from tests.conftest import InProcessGrid

N_PER_BATCH, N_TEST = 20, 20  # CIFAR-10: five train batches of 20 images, balanced labels


# ---------------------------------------------------------------- tiny files in the real CIFAR format


def write_cifar10(root: Path) -> None:
    folder = root / "cifar-10-batches-py"
    for batch in range(1, 6):
        labels = [int(i % 10) for i in range(N_PER_BATCH)]
        write_pickle(folder / f"data_batch_{batch}", {"data": cifar_rows(N_PER_BATCH, batch), "labels": labels})
    write_pickle(folder / "test_batch", {"data": cifar_rows(N_TEST, 9), "labels": [i % 10 for i in range(N_TEST)]})
    write_pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})


def write_cifar100(root: Path, num_train: int = 120) -> None:
    folder = root / "cifar-100-python"
    fine = [i % 100 for i in range(num_train)]
    write_pickle(folder / "train", {"data": cifar_rows(num_train, 3), "fine_labels": fine,
                                    "coarse_labels": [label // 5 for label in fine]})
    write_pickle(folder / "test", {"data": cifar_rows(N_TEST, 4), "fine_labels": list(range(N_TEST)),
                                   "coarse_labels": [label // 5 for label in range(N_TEST)]})
    write_pickle(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                                   "coarse_label_names": [f"c{i}" for i in range(20)]})


@pytest.fixture
def skip_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake files cannot match torchvision's checksums: skip only the md5 comparison, not the file checks."""
    monkeypatch.setattr(torchvision.datasets.utils, "check_md5", lambda fpath, md5, **kwargs: True)


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Partitions of throw-away files go to a throw-away cache, not ~/.cache/fedtna."""
    monkeypatch.setenv("FEDTNA_CACHE_DIR", str(tmp_path / "array-cache"))


# ---------------------------------------------------------------- composed values

COMMON = {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4, "nesterov": False, "lr_decay": 0.99,
          "num_rounds": 200, "fraction_train": 1.0, "mask_ratio": 0.4, "augmentation": "crop_flip"}
PRESETS = {
    "paper_cifar10": {**COMMON, "lr": 0.1, "batch_size": 128, "num_clients": 20, "local_epochs": 1,
                      "dataset": "cifar10", "num_classes": 10, "model": "cnn"},
    "paper_cifar100": {**COMMON, "lr": 0.03, "batch_size": 64, "num_clients": 50, "local_epochs": 3,
                       "dataset": "cifar100", "num_classes": 100, "model": "resnet20"},
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_composes_to_the_documented_values(preset: str, tmp_path: Path) -> None:
    config = compose_run_config([f"+experiment={preset}"], tmp_path)
    check_run_config(config)
    expected = PRESETS[preset]
    for key in ("optimizer", "momentum", "weight_decay", "nesterov", "lr_decay", "num_rounds", "fraction_train",
                "mask_ratio", "augmentation", "lr", "batch_size", "num_clients", "local_epochs"):
        assert getattr(config, key) == expected[key], key
    assert config.dataset["name"] == expected["dataset"] and config.dataset["num_classes"] == expected["num_classes"]
    assert config.dataset["num_train"] is None and config.dataset["num_test"] is None
    assert config.model["name"] == expected["model"]
    assert config.partition["name"] == "dirichlet" and config.partition["alpha"] == 0.5
    assert config.strategy["name"] == "fedavg" and config.seed == 0  # left to the user / fedtna's default


def test_presets_yield_to_the_command_line(tmp_path: Path) -> None:
    config = compose_run_config(["+experiment=paper_cifar10", "strategy=fedpnu", "model=resnet20",
                                 "augmentation=none", "batch_size=64", "dataset.num_train=5000"], tmp_path)
    assert (config.strategy["name"], config.model["name"], config.augmentation, config.batch_size) == \
        ("fedpnu", "resnet20", "none", 64)
    assert config.dataset["num_train"] == 5000 and config.lr == 0.1


def test_drift_keeps_its_regime_and_adds_the_authors_weight_decay(tmp_path: Path) -> None:
    config = compose_run_config(["+experiment=drift"], tmp_path)
    assert config.weight_decay == 5e-4
    assert (config.num_clients, config.fraction_train, config.local_epochs, config.num_rounds) == (50, 0.2, 5, 30)
    assert config.partition["name"] == "pathological" and config.partition["classes_per_client"] == 2
    assert config.augmentation == "none" and config.dataset["name"] == "mnist5k"


# ---------------------------------------------------------------- subsetting


def test_stratified_subset_is_seeded_proportional_and_sorted() -> None:
    labels = np.repeat(np.arange(4), [400, 300, 200, 100])
    chosen = stratified_subset(labels, 100, seed=0)
    assert len(chosen) == 100 and len(np.unique(chosen)) == 100 and np.all(np.diff(chosen) > 0)
    assert np.bincount(labels[chosen]).tolist() == [40, 30, 20, 10]
    assert np.array_equal(chosen, stratified_subset(labels, 100, seed=0))
    assert not np.array_equal(chosen, stratified_subset(labels, 100, seed=1))
    uneven = np.bincount(labels[stratified_subset(labels, 7, seed=3)], minlength=4)
    assert uneven.sum() == 7 and np.all(np.abs(uneven - 7 * np.array([0.4, 0.3, 0.2, 0.1])) <= 1)
    assert np.array_equal(stratified_subset(labels, len(labels), seed=5), np.arange(len(labels)))


def test_cifar_subset_keeps_the_chosen_images_and_balances_classes(tmp_path: Path, skip_md5: None) -> None:
    write_cifar10(tmp_path)
    full = load_cifar10(str(tmp_path), download=False)
    part = load_cifar10(str(tmp_path), download=False, num_train=30, num_test=10, subset_seed=0)
    assert part.train_x.shape == (30, 3, 32, 32) and part.test_x.shape == (10, 3, 32, 32)
    assert np.bincount(part.train_y.numpy(), minlength=10).tolist() == [3] * 10
    assert np.bincount(part.test_y.numpy(), minlength=10).tolist() == [1] * 10
    rows = {tuple(image.flatten().tolist()[:64]): label
            for image, label in zip(full.train_x, full.train_y.tolist(), strict=True)}
    assert all(rows[tuple(image.flatten().tolist()[:64])] == label
               for image, label in zip(part.train_x, part.train_y.tolist(), strict=True))  # real images, own labels
    same = load_cifar10(str(tmp_path), download=False, num_train=30, num_test=10, subset_seed=0)
    other = load_cifar10(str(tmp_path), download=False, num_train=30, num_test=10, subset_seed=1)
    assert torch.equal(part.train_x, same.train_x) and not torch.equal(part.train_x, other.train_x)
    unchanged = load_cifar10(str(tmp_path), download=False, num_train=None, num_test=None)
    assert torch.equal(unchanged.train_x, full.train_x) and torch.equal(unchanged.test_y, full.test_y)


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"num_train": 0}, r"dataset.num_train=0 must be null \(all examples\) or an integer >= 1"),
        ({"num_test": -3}, r"dataset.num_test=-3 must be null"),
        ({"num_train": True}, r"dataset.num_train=True must be null"),
        ({"num_train": 2.5}, r"dataset.num_train=2.5 must be null"),
        ({"num_test": "10"}, r"dataset.num_test='10' must be null"),
        ({"subset_seed": -1}, r"dataset.subset_seed=-1 must be a non-negative integer"),
        ({"num_train": 101}, r"dataset.num_train=101 is more than the 100 examples of that cifar10 split"),
        ({"num_test": 21}, r"dataset.num_test=21 is more than the 20 examples of that cifar10 split"),
    ],
)
def test_bad_subset_values_are_one_config_error_line(options: dict, pattern: str, tmp_path: Path,
                                                     skip_md5: None) -> None:
    write_cifar10(tmp_path)
    with pytest.raises(ConfigError, match=pattern) as caught:
        load_cifar10(str(tmp_path), download=False, **options)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- end to end, in process (no Ray)


def run_preset(output_dir: Path, data_dir: Path, *overrides: str) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """One round with two clients; returns the metric rows (without timings) and the final model."""
    config = compose_run_config(["num_rounds=1", "num_clients=2", f"dataset.data_dir={data_dir}",
                                 "dataset.download=false", "progress=false", *overrides], output_dir)
    check_run_config(config)
    grid = InProcessGrid(config, config.num_clients)
    run_server(grid, config)
    train_replies = [message for message in grid.delivered if message.metadata.message_type == "train"]
    assert len(train_replies) == config.num_clients
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
    rows[0]["train_examples"] = len(dataset_bundle(config).train_y)
    return rows, torch.load(output_dir / "model.pt")


def test_paper_cifar10_runs_end_to_end_and_repeats_exactly(tmp_path: Path, skip_md5: None, private_cache: None,
                                                            one_torch_thread: None) -> None:
    write_cifar10(tmp_path / "data")
    preset = ("+experiment=paper_cifar10", "strategy=fedpfn")
    rows, model = run_preset(tmp_path / "a", tmp_path / "data", *preset)
    again_rows, again_model = run_preset(tmp_path / "b", tmp_path / "data", *preset)
    plain_rows, _ = run_preset(tmp_path / "c", tmp_path / "data", *preset, "augmentation=none")
    assert [row["round"] for row in rows] == [1] and 0.0 <= rows[0]["test_accuracy"] <= 1.0
    assert rows[0]["train_examples"] == 5 * N_PER_BATCH
    assert rows[0]["clients"] == 2 and rows[0]["anchor_drift"] == 0.0
    assert abs(rows[0]["fixed_fraction"] - 0.4) < 0.01
    assert rows == again_rows and all(torch.equal(model[k], again_model[k]) for k in model)
    assert plain_rows[0]["train_loss"] != rows[0]["train_loss"]  # crop_flip really reaches the clients
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["last5_mean_test_accuracy"] == rows[0]["test_accuracy"]


def test_paper_cifar100_runs_end_to_end_on_a_subset(tmp_path: Path, skip_md5: None, private_cache: None,
                                                     one_torch_thread: None) -> None:
    write_cifar100(tmp_path / "data", num_train=200)
    rows, model = run_preset(tmp_path / "run", tmp_path / "data", "+experiment=paper_cifar100", "strategy=fedpnu",
                             "dataset.num_train=120", "dataset.num_test=10")
    assert rows[0]["round"] == 1 and np.isfinite(rows[0]["test_loss"]) and rows[0]["anchor_drift"] == 0.0
    assert model["fc.weight"].shape == (100, 64) and rows[0]["train_examples"] == 120
