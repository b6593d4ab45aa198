"""Per-round results are written as rounds end; wandb offline logs locally."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fedtna.fl.results import RunRecorder

OVERRIDES = ("seed=3", "num_rounds=3", "strategy=fedpfn", "progress=false")


@pytest.fixture
def config(tmp_path: Path):
    from tests.conftest import compose_run_config

    return lambda *extra: compose_run_config(tmp_path, *OVERRIDES, *extra)


def test_rounds_are_on_disk_before_the_run_ends(tmp_path: Path, config) -> None:
    recorder = RunRecorder(tmp_path, config())
    recorder.record_round(1, {"test_accuracy": 0.5, "test_loss": 1.0, "train_loss": 1.2})
    recorder.record_round(2, {"train_loss": 0.9, "fixed_fraction": 0.4})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["round"] for line in lines] == [1, 2]
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert rows[1]["fixed_fraction"] == "0.4" and rows[0]["test_accuracy"] == "0.5"
    recorder.record_round(3, {"test_accuracy": 0.7, "test_loss": 0.8})
    summary = recorder.close()
    assert summary["final_test_accuracy"] == 0.7 and summary["best_test_accuracy"] == 0.7
    assert summary["rounds"] == 3 and summary["seed"] == 3
    assert json.loads((tmp_path / "summary.json").read_text())["final_test_accuracy"] == 0.7


def test_non_finite_values_become_null(tmp_path: Path, config) -> None:
    recorder = RunRecorder(tmp_path, config())
    recorder.record_round(1, {"train_loss": float("nan")})
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["train_loss"] is None


def test_wandb_offline_writes_a_local_run(tmp_path: Path, monkeypatch, config) -> None:
    monkeypatch.setenv("WANDB_SILENT", "true")
    recorder = RunRecorder(tmp_path, config("wandb.mode=offline", "wandb.project=fedtna-test"))
    recorder.record_round(1, {"test_accuracy": 0.5})
    recorder.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb"))
