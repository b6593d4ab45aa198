"""``python -m fedtna.run`` end to end through Ray, and its bad-input errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import run_entry_in_process

pytestmark = pytest.mark.slow

SMALL = ["num_clients=3", "num_rounds=2", "local_epochs=1", "batch_size=64", "model=mlp", "progress=false",
         "print_config=false"]


def run_cli(*overrides: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m fedtna.run`` from any directory: the config tree ships inside the package."""
    return subprocess.run([sys.executable, "-m", "fedtna.run", *overrides], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_round_simulation_is_complete_and_reproducible(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        run_dir = tmp_path / name
        result = run_cli(*SMALL, "strategy=fedpnu", "mask_ratio=0.6", f"hydra.run.dir={run_dir}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        runs.append(run_dir)
    rows = metrics(runs[0])
    assert [row["round"] for row in rows] == [1, 2]
    assert rows[-1]["test_accuracy"] > 0.5
    # E = 1: pnu_split=auto halves the steps, so about half the weights are held at an average step
    assert rows[-1]["anchor_drift"] == 0.0 and 0.45 < rows[-1]["fixed_fraction"] < 0.55
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["final_test_accuracy"] == rows[-1]["test_accuracy"] and summary["rounds"] == 2
    assert summary["seed"] == 0 and summary["wall_seconds"] > 0
    for produced in ("config.json", ".hydra/config.yaml", "model.pt", "label_distribution.png", "metrics.csv"):
        assert (runs[0] / produced).exists(), produced
    assert json.loads((runs[0] / "config.json").read_text())["mask_ratio"] == 0.6
    keys = ("test_accuracy", "test_loss", "train_loss")
    assert [[row[k] for k in keys] for row in rows] == [[row[k] for k in keys] for row in metrics(runs[1])]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("mask_ratio=1.0", "mask_ratio=1.0 is outside the allowed range [0, 1)"),
        ("mask_ratio=-0.1", "mask_ratio=-0.1 is outside the allowed range [0, 1)"),
        ("partition.alpha=0", "partition.alpha=0 is outside the allowed range > 0"),
        ("fraction_train=0", "fraction_train=0.0 is outside the allowed range (0, 1]"),
        ("fraction_train=1.5", "fraction_train=1.5 is outside the allowed range (0, 1]"),
        ("num_clients=0", "num_clients=0 is outside the allowed range >= 1"),
        ("num_clients=5000", "num_clients=5000 is more than the 4000 training examples"),
        ("local_epochs=0", "local_epochs=0 is outside the allowed range >= 1"),
        ("strategy=fedpnu strategy.pnu_split=batch",
         "strategy.pnu_split='batch' is not one of ['auto', 'epoch', 'step']"),
        ("strategy=fedpfn mask.scope=[conv1,nope]", "mask.scope: unknown layer name(s) ['nope']"),
        pytest.param("device=cuda", "device='cuda' but no CUDA GPU is visible",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="holds only without a GPU")),
        ("lr=abc", "lr='abc' has the wrong type: expected Float"),
        ("+unknown_key=1", "unknown_key is not a key of the RunConfig config"),
        ("strategy.server=os.system", "strategy.server='os.system' is not allowed"),
        ("model._target_=subprocess.call", "model._target_='subprocess.call' is not allowed"),
        ("+strategy.colour=red", "strategy keys ['colour'] are not arguments of FedAvg"),
        ("optimizer=rmsprop", "optimizer='rmsprop' is not one of ['sgd', 'adam']"),
    ],
)
def test_bad_input_gives_one_clear_line_and_nonzero_exit(override: str, expected: str, tmp_path: Path, capsys,
                                                         monkeypatch) -> None:
    result = run_entry_in_process("fedtna.run", [*override.split(), f"hydra.run.dir={tmp_path}", "print_config=false"],
                                  capsys, monkeypatch)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert "ray" not in result.stderr.lower()


def test_bad_input_from_the_command_line_is_one_line_before_any_work(tmp_path: Path) -> None:
    """The real process, once: the in-process cases above call the same ``main()``."""
    result = run_cli("mask_ratio=1.0", f"hydra.run.dir={tmp_path}", "print_config=false", timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        "error: mask_ratio=1.0 is outside the allowed range [0, 1)"]
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "label_distribution.png").exists()


def test_classes_per_client_above_classes_is_rejected(tmp_path: Path, capsys, monkeypatch) -> None:
    overrides = ["partition=pathological", "partition.classes_per_client=11", f"hydra.run.dir={tmp_path}",
                 "print_config=false"]
    result = run_entry_in_process("fedtna.run", overrides, capsys, monkeypatch)
    assert result.returncode == 2
    assert "partition.classes_per_client=11 is more than the 10 classes" in result.stderr


def test_unknown_group_option_lists_choices(tmp_path: Path, capsys, monkeypatch) -> None:
    result = run_entry_in_process("fedtna.run", ["strategy=fedsgd", f"hydra.run.dir={tmp_path}"], capsys, monkeypatch)
    assert result.returncode != 0
    assert "fedavg" in result.stderr and "fedpnu" in result.stderr


def test_wandb_online_without_credentials_is_one_line_before_ray(tmp_path: Path) -> None:
    import os

    env = {key: value for key, value in os.environ.items() if not key.startswith("WANDB_")}
    env["NETRC"] = str(tmp_path / "no-netrc")
    result = subprocess.run([sys.executable, "-m", "fedtna.run", "wandb.mode=online", "print_config=false",
                             f"hydra.run.dir={tmp_path}"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "wandb.mode=online needs a wandb API key" in lines[0]
    assert not (tmp_path / "metrics.jsonl").exists()


def test_a_diverging_run_exits_nonzero_naming_round_and_lr(tmp_path: Path) -> None:
    result = run_cli(*SMALL, "lr=50", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "error: round 1 (train)" in result.stderr and "lr=50.0 is likely too high" in result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failure"] == "diverged" and "lr=50.0" in summary["reason"]
    assert "job failed" not in result.stderr  # a single run stops at once, as before
