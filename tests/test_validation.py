"""``validation_fraction``: a seeded, class-stratified held-out part of the training data, evaluated by the server."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fedtna.config.checks import check_run_config
from fedtna.data import partition_dataset
from fedtna.data.validation import held_out_count, validation_split
from fedtna.errors import ConfigError
from fedtna.fl.experiment import run_experiment, write_config
from fedtna.fl.local_data import (
    all_partitions,
    client_data,
    dataset_bundle,
    held_out_split,
    partition_seed,
    validation_set,
)
from fedtna.fl.resume import resolve_resume
from fedtna.fl.server_app import run_server
from tests.conftest import InProcessGrid
from tests.test_resume import KilledAfter, rows_of

VAL_KEYS = ("val_accuracy", "val_loss")
VAL_SUMMARY = ("final_val_accuracy", "best_val_accuracy", "last5_mean_val_accuracy")


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    """Unbalanced classes (40 to 400 examples), shuffled."""
    sizes = [40, 400, 123, 77, 250]
    return np.random.default_rng(3).permutation(np.repeat(np.arange(len(sizes)), sizes)).astype(np.int64)


def test_the_split_is_stratified_by_class(labels: np.ndarray) -> None:
    split = validation_split(labels, 0.2, seed=1)
    for label in np.unique(labels):
        size = int((labels == label).sum())
        assert int((labels[split.validation] == label).sum()) == held_out_count(size, 0.2) == round(0.2 * size)
    assert len(split.validation) == pytest.approx(0.2 * len(labels), abs=len(np.unique(labels)))
    overall = np.bincount(labels) / len(labels)
    held = np.bincount(labels[split.validation]) / len(split.validation)
    assert np.abs(held - overall).max() < 0.01


def test_the_split_is_a_seeded_disjoint_cover(labels: np.ndarray) -> None:
    split = validation_split(labels, 0.1, seed=7)
    again = validation_split(labels, 0.1, seed=7)
    other = validation_split(labels, 0.1, seed=8)
    assert np.array_equal(split.validation, again.validation) and np.array_equal(split.train, again.train)
    assert not np.array_equal(split.validation, other.validation)
    assert not set(split.train) & set(split.validation)
    assert np.array_equal(np.sort(np.concatenate([split.train, split.validation])), np.arange(len(labels)))
    assert np.array_equal(split.validation, np.sort(split.validation)) and split.validation.dtype == np.int64


def test_every_class_keeps_an_example_to_train_on() -> None:
    split = validation_split(np.array([0, 1, 1, 2, 2, 2]), 0.9, seed=0)
    assert sorted(np.array([0, 1, 1, 2, 2, 2])[split.train].tolist()) == [0, 1, 2]


@pytest.mark.parametrize("value", ["1.0", "-0.1", "1.5"])
def test_a_fraction_outside_0_1_is_one_line_before_any_work(run_config_factory, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        check_run_config(run_config_factory(f"validation_fraction={value}"))
    assert str(raised.value) == f"validation_fraction={float(value)!r} is outside the allowed range [0, 1)"


def test_a_fraction_that_holds_out_nothing_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"validation_fraction=0.01 holds out no example of the 6 training"):
        validation_split(np.array([0, 1, 1, 2, 2, 2]), 0.01, seed=0)


@pytest.mark.parametrize("partition", ["partition=dirichlet", "partition=iid"])
def test_clients_never_hold_validation_data_and_cover_the_rest(run_config_factory, partition: str) -> None:
    config = run_config_factory(partition, "num_clients=6", "validation_fraction=0.15", "seed=4")
    split = held_out_split(config)
    assert split is not None
    partitions = list(all_partitions(config))
    held = set(split.validation.tolist())
    for part in partitions:
        assert not held & set(part.tolist())
        assert np.array_equal(part, np.sort(part))
    assert np.array_equal(np.sort(np.concatenate(partitions)), split.train)  # each remaining example exactly once
    bundle = dataset_bundle(config)
    _, targets = client_data(config, 2)
    assert np.array_equal(targets.numpy(), bundle.train_y.numpy()[partitions[2]])
    val_x, val_y = validation_set(config)
    assert np.array_equal(val_y.numpy(), bundle.train_y.numpy()[split.validation]) and len(val_x) == len(val_y)
    again = list(all_partitions(run_config_factory(partition, "num_clients=6", "validation_fraction=0.15", "seed=4")))
    assert all(np.array_equal(a, b) for a, b in zip(partitions, again, strict=True))


def test_fraction_zero_keeps_todays_partitions(run_config_factory) -> None:
    config = run_config_factory("num_clients=5", "seed=2")
    assert config.validation_fraction == 0 and held_out_split(config) is None and validation_set(config) is None
    labels = dataset_bundle(config).train_y.numpy()
    direct = partition_dataset(config.partition_spec, labels, 5, partition_seed(2))  # the partitions before the key
    assert all(np.array_equal(a, b) for a, b in zip(all_partitions(config), direct, strict=True))
    assert np.array_equal(client_data(config, 3)[1].numpy(), labels[direct[3]])


@pytest.mark.parametrize("backend", ["local", "vectorized", pytest.param("ray", marks=pytest.mark.slow)])
def test_the_server_records_validation_metrics(run_config_factory, monkeypatch, backend: str) -> None:
    logged: list[dict] = []
    monkeypatch.setattr("fedtna.fl.results.WandbLogger.log", lambda self, row: logged.append(dict(row)))
    config = run_config_factory("validation_fraction=0.1", "num_rounds=3", "eval_every=2",
                                f"simulation.backend={backend}", "save_model=false")
    summary = run_experiment(config)
    rows = [json.loads(line) for line in (Path(config.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert [all(key in row for key in VAL_KEYS) for row in rows] == [False, True, True]  # rounds 2 and 3 (the last)
    assert all(0.0 <= row["val_accuracy"] <= 1.0 and row["val_loss"] > 0 for row in rows[1:])
    assert summary["final_val_accuracy"] == rows[-1]["val_accuracy"]
    assert summary["best_val_accuracy"] == max(row["val_accuracy"] for row in rows[1:])
    assert summary["last5_mean_val_accuracy"] == pytest.approx((rows[1]["val_accuracy"] + rows[2]["val_accuracy"]) / 2)
    assert json.loads((Path(config.output_dir) / "summary.json").read_text())["final_val_accuracy"] is not None
    assert [row.get("val_accuracy") for row in logged] == [row.get("val_accuracy") for row in rows]  # wandb


def test_without_validation_there_are_no_val_metrics(run_config_factory) -> None:
    config = run_config_factory("save_model=false")
    summary = run_experiment(config)
    rows = (Path(config.output_dir) / "metrics.jsonl").read_text()
    assert "val_" not in rows and not any(key in summary for key in VAL_SUMMARY)


def test_a_resumed_run_with_validation_equals_the_uninterrupted_one(run_config_factory) -> None:
    overrides = ("validation_fraction=0.2", "num_rounds=4", "fraction_train=0.5")
    whole = run_config_factory(*overrides)
    run_server(InProcessGrid(whole, 4), whole)
    broken = run_config_factory(*overrides)
    write_config(broken)
    with pytest.raises(KeyboardInterrupt):
        run_server(KilledAfter(broken, 4, kill_round=3), broken)
    resumed, finished = resolve_resume(replace(broken, resume=broken.output_dir), [f"resume={broken.output_dir}"])
    assert finished is None and resumed.validation_fraction == 0.2
    summary = run_server(InProcessGrid(resumed, 4), resumed)
    assert rows_of(Path(broken.output_dir)) == rows_of(Path(whole.output_dir))
    assert all(key in row for row in rows_of(Path(broken.output_dir)) for key in VAL_KEYS)
    assert all(summary[key] is not None for key in VAL_SUMMARY)


def test_a_run_saved_before_the_key_existed_resumes_without_validation(run_config_factory) -> None:
    config = run_config_factory("num_rounds=2")
    write_config(config)
    saved = json.loads((Path(config.output_dir) / "config.json").read_text())
    del saved["validation_fraction"]
    (Path(config.output_dir) / "config.json").write_text(json.dumps(saved))
    resumed, _ = resolve_resume(replace(config, resume="auto"), ["resume=auto"])
    assert resumed.validation_fraction == 0.0
