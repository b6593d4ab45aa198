"""Client partitions cover the train set as promised, are seeded, and reject impossible settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from fedtna.data import label_counts, partition_dataset, plot_label_distribution
from fedtna.data.partition import StoredPartitioning, dirichlet, iid, pathological
from fedtna.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parents[1] / "fedtna" / "conf" / "partition"
NUM_CLASSES = 10


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    """1,000 labels sorted by class, so any split that forgot to shuffle shows up as contiguous runs."""
    return np.repeat(np.arange(NUM_CLASSES), 100).astype(np.int64)


def assert_exact_cover(partitions: list[np.ndarray], total: int) -> None:
    """Every train index appears in exactly one partition."""
    assert all(part.dtype == np.int64 for part in partitions)
    assert all(np.array_equal(part, np.sort(part)) for part in partitions)
    assert np.array_equal(np.sort(np.concatenate(partitions)), np.arange(total))


def classes_per_partition(labels: np.ndarray, partitions: list[np.ndarray]) -> list[int]:
    """How many distinct labels each partition holds."""
    return [len(np.unique(labels[part])) for part in partitions]


def test_iid_is_an_even_shuffled_cover(labels: np.ndarray) -> None:
    partitions = iid(labels, num_partitions=7, seed=0)
    assert_exact_cover(partitions, len(labels))
    sizes = [len(part) for part in partitions]
    assert max(sizes) - min(sizes) <= 1 and len(partitions) == 7
    assert min(classes_per_partition(labels, partitions)) >= 8  # not contiguous shards of the sorted labels


def test_dirichlet_with_min_size_covers_everything(labels: np.ndarray) -> None:
    partitions = dirichlet(labels, num_partitions=10, seed=0, alpha=0.5, min_partition_size=10)
    assert_exact_cover(partitions, len(labels))
    assert min(len(part) for part in partitions) >= 10


@pytest.mark.parametrize("mode", ["first-deterministic", "deterministic"])
def test_pathological_covering_modes_use_every_sample(labels: np.ndarray, mode: str) -> None:
    partitions = pathological(labels, num_partitions=10, seed=0, classes_per_client=2, class_assignment_mode=mode)
    assert_exact_cover(partitions, len(labels))
    assert max(classes_per_partition(labels, partitions)) <= 2


def test_pathological_random_is_disjoint_and_limited(labels: np.ndarray) -> None:
    partitions = pathological(labels, num_partitions=12, seed=1, classes_per_client=3)
    used = np.concatenate(partitions)
    assert len(np.unique(used)) == len(used) and used.max() < len(labels)
    assert classes_per_partition(labels, partitions) == [3] * 12


@pytest.mark.parametrize(
    "split",
    [
        lambda labels, seed: iid(labels, 5, seed),
        lambda labels, seed: dirichlet(labels, 5, seed, alpha=0.5),
        lambda labels, seed: pathological(labels, 5, seed, classes_per_client=2),
    ],
    ids=["iid", "dirichlet", "pathological"],
)
def test_same_seed_same_partitions_other_seed_different(labels: np.ndarray, split) -> None:
    first, again, other = split(labels, 3), split(labels, 3), split(labels, 4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_smaller_alpha_gives_more_label_skew(labels: np.ndarray) -> None:
    skewed = dirichlet(labels, num_partitions=20, seed=0, alpha=0.05, min_partition_size=0)
    near_iid = dirichlet(labels, num_partitions=20, seed=0, alpha=100.0, min_partition_size=0)
    skewed_classes = np.mean(classes_per_partition(labels, skewed))
    near_iid_classes = np.mean(classes_per_partition(labels, near_iid))
    assert skewed_classes < 4 < 9 < near_iid_classes


def test_dirichlet_unreachable_min_size_is_config_error(labels: np.ndarray) -> None:
    with pytest.raises(ConfigError, match=r"min_partition_size=19 was not reached .* after 11 Dirichlet draws"):
        dirichlet(labels, num_partitions=50, seed=0, alpha=0.01, min_partition_size=19)


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda y: iid(y, 0, 0), r"num_partitions=0 must be an integer from 1 to 1000"),
        (lambda y: iid(y, 1001, 0), r"num_partitions=1001 must be an integer from 1 to 1000"),
        (lambda y: iid(y, 2, -1), r"seed=-1 must be a non-negative integer"),
        (lambda y: iid(y.astype(float), 2, 0), r"labels must be a non-empty 1-D integer array"),
        (lambda y: dirichlet(y, 5, 0, alpha=0), r"partition.alpha=0 is outside the allowed range > 0"),
        (lambda y: dirichlet(y, 5, 0, alpha=-1.5), r"partition.alpha=-1.5 is outside the allowed range > 0"),
        (
            lambda y: dirichlet(y, 5, 0, alpha=0.5, min_partition_size=201),
            r"min_partition_size=201 is impossible: .* 5 partitions x min_partition_size <= 1000",
        ),
        (lambda y: dirichlet(y, 5, 0, alpha=0.5, min_partition_size=-1), r"min_partition_size=-1 is impossible"),
        (
            lambda y: pathological(y, 5, 0, classes_per_client=0),
            r"classes_per_client=0 is outside the allowed range integers >= 1",
        ),
        (lambda y: pathological(y, 5, 0, classes_per_client=11), r"classes_per_client=11 is more than the 10 classes"),
        (
            lambda y: pathological(y, 5, 0, classes_per_client=2, class_assignment_mode="sorted"),
            r"class_assignment_mode='sorted' is not one of \['random', 'deterministic', 'first-deterministic'\]",
        ),
        (
            lambda y: pathological(y[::50], 20, 0, classes_per_client=10),
            r"classes_per_client=10 with num_partitions=20: a class would be shared by more clients",
        ),
    ],
)
def test_bad_values_are_config_errors(labels: np.ndarray, call, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern) as caught:
        call(labels)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "pathological"])
def test_partition_yaml_runs_through_partition_dataset(labels: np.ndarray, scheme: str) -> None:
    cfg = OmegaConf.load(CONF_DIR / f"{scheme}.yaml")
    assert cfg.name == scheme
    partitions = partition_dataset(cfg, labels, num_partitions=10, seed=0)
    assert len(partitions) == 10
    if scheme == "pathological":
        assert max(classes_per_partition(labels, partitions)) <= cfg.classes_per_client
    else:
        assert_exact_cover(partitions, len(labels))


def test_partition_dataset_matches_direct_call(labels: np.ndarray) -> None:
    cfg = {"_target_": "fedtna.data.partition.dirichlet", "name": "dirichlet", "alpha": 0.3}
    via_config = partition_dataset(cfg, labels, num_partitions=6, seed=9)
    direct = dirichlet(labels, num_partitions=6, seed=9, alpha=0.3)
    assert all(np.array_equal(a, b) for a, b in zip(via_config, direct, strict=True))


def test_partition_dataset_reports_missing_argument(labels: np.ndarray) -> None:
    with pytest.raises(ConfigError, match=r"partition config does not fit .*dirichlet.*'alpha'"):
        partition_dataset({"_target_": "fedtna.data.partition.dirichlet"}, labels, 4, 0)


def test_label_counts_and_plot(labels: np.ndarray, tmp_path: Path) -> None:
    partitions = [np.array([0, 1, 100]), np.array([999]), np.array([], dtype=np.int64)]
    counts = label_counts(labels, partitions, NUM_CLASSES)
    assert counts.shape == (3, NUM_CLASSES)
    assert counts[0, 0] == 2 and counts[0, 1] == 1 and counts[1, 9] == 1 and counts.sum() == 4
    path = tmp_path / "plots" / "labels.png"
    plot_label_distribution(labels, iid(labels, 8, 0), NUM_CLASSES, path)
    content = path.read_bytes()
    assert content.startswith(b"\x89PNG") and len(content) > 5_000


def test_stored_partitioning_is_the_same_split(labels: np.ndarray) -> None:
    lazy = dirichlet(labels, num_partitions=7, seed=3, alpha=0.5)
    stored = StoredPartitioning.of(lazy)
    again = StoredPartitioning(*stored.arrays())
    assert len(again) == len(lazy) == 7
    for client in range(7):
        assert np.array_equal(again[client], lazy[client])
    assert np.array_equal(again[-1], lazy[6]) and len(again[1:3]) == 2
    with pytest.raises(IndexError):
        again[7]
    with pytest.raises(ValueError, match="do not split"):
        StoredPartitioning(np.arange(5), np.array([0, 2, 4]))


SPLIT_PROBE = """
import sys
from fedtna.fl.local_data import all_partitions, client_data
from tests.conftest import compose_run_config
config = compose_run_config(sys.argv[1], "num_clients=6", "partition.alpha=0.3", "seed=5")
split = all_partitions(config)
print(",".join(str(int(split[client].sum())) for client in range(6)), int(client_data(config, 4)[1].sum()),
      "flwr_datasets" in sys.modules)
"""


@pytest.mark.slow
def test_a_later_run_reads_the_whole_split_from_the_disk_cache(tmp_path: Path) -> None:
    """The first process draws the split with flwr-datasets and stores it; the next one reads it and
    never imports flwr-datasets (seconds saved per run), and both see the same split."""
    environment = {**os.environ, "FEDTNA_CACHE_DIR": str(tmp_path / "cache")}
    root = Path(__file__).resolve().parents[1]

    def probe() -> list[str]:
        done = subprocess.run([sys.executable, "-c", SPLIT_PROBE, str(tmp_path / "run")], env=environment,
                              cwd=root, capture_output=True, text=True, check=True)
        return done.stdout.split()

    first = probe()
    entries = sorted((tmp_path / "cache").glob("*.npz"))
    second = probe()
    assert first[2] == "True" and second[2] == "False"
    assert first[:2] == second[:2]
    assert sorted((tmp_path / "cache").glob("*.npz")) == entries  # read, not written again


def test_the_cached_split_is_keyed_by_the_code_that_draws_it(tmp_path: Path, monkeypatch) -> None:
    """Editing a partition function (one's own, under trusted_packages) must not read a stale split."""
    from fedtna.fl.local_data import source_digest

    module = tmp_path / "mysplits.py"
    module.write_text("def halves(labels, num_partitions, seed):\n    return []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = source_digest("mysplits.halves")
    module.write_text("def halves(labels, num_partitions, seed):\n    return [labels]\n")
    source_digest.cache_clear()
    assert source_digest("mysplits.halves") != before
    assert source_digest("fedtna.data.partition.iid") == source_digest("fedtna.data.partition.dirichlet")


def test_every_determinant_of_a_split_changes_its_cache_key(monkeypatch) -> None:
    import torch

    from fedtna.fl import local_data

    bundle = DatasetBundleStub(train_y=torch.arange(10))
    monkeypatch.setattr(local_data, "_bundle", lambda key: bundle)
    arguments = ["dataset-key", '{"node": {"_target_": "fedtna.data.partition.dirichlet"}}', 10, 7, 0.0, 0]
    base = local_data._split_key(*arguments)
    changed = [local_data._split_key(*arguments[:index], value, *arguments[index + 1:])
               for index, value in [(0, "other-dataset"), (1, arguments[1].replace("dirichlet", "iid")),
                                    (2, 11), (3, 8), (4, 0.1)]]
    assert base not in changed and len(set(changed)) == len(changed)
    assert local_data._split_key(*arguments[:4], 0.1, 0) != local_data._split_key(*arguments[:4], 0.1, 1)
    assert "numpy-" in base and "flwr-datasets-" in base
    bundle.train_y = torch.arange(1, 11)  # the same folder with other files
    assert local_data._split_key(*arguments) != base
    assert local_data._module_of("fedtna.data.partition.dirichlet") == "fedtna.data.partition"
    assert local_data._module_of("fedtna.data.partition.Partitioning.__getitem__") == "fedtna.data.partition"


class DatasetBundleStub:
    """The one field of a DatasetBundle the cache key reads."""

    def __init__(self, train_y) -> None:
        self.train_y = train_y
