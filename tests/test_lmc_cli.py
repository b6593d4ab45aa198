"""``python -m fedtna.lmc`` end to end: bad input is one error line (exit 2); a tiny run writes its files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_entry_in_process

pytestmark = pytest.mark.slow
TINY = ["epochs=1", "num_points=3", "batch_size=128", "progress=false",
        "num_threads=1"]


def run_lmc(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fedtna.lmc", f"hydra.run.dir={tmp_path}", *overrides],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model=mlp", "num_models=1"], "num_models=1 is outside the allowed range integers >= 2"),
        (["num_points=2"], "num_points=2 is outside the allowed range integers >= 3"),
        (["mask_ratio=1.0"], "mask_ratio=1.0 is outside the allowed range [0, 1)"),
        (["mask_ratio=-0.1"], "mask_ratio=-0.1 is outside the allowed range [0, 1)"),
        (["init=random"], "init='random' is not one of ['independent', 'shared', 'checkpoint']"),
    ],
    ids=["num_models", "num_points", "mask_ratio_high", "mask_ratio_negative", "init"],
)
def test_bad_input_is_one_error_line_with_exit_code_2(tmp_path: Path, overrides: list[str], expected: str, capsys,
                                                      monkeypatch) -> None:
    result = run_entry_in_process("fedtna.lmc", [f"hydra.run.dir={tmp_path}", *TINY, *overrides], capsys, monkeypatch)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert expected in lines[0]
    assert not (tmp_path / "lmc.json").exists()


def test_tiny_run_writes_json_and_plot(tmp_path: Path) -> None:
    result = run_lmc(tmp_path, *TINY, "model=mlp", "model.hidden_sizes=[32]", "mask_ratio=0.5")
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "lmc.json").read_text())
    assert list(data["modes"]) == ["vanilla", "tna_pfn", "prune_init", "weight_matching", "tna_pfn_weight_matching"]
    assert data["config"]["mask_ratio"] == 0.5 and data["config"]["model"]["hidden_sizes"] == [32]
    for mode in data["modes"].values():
        (pair,) = mode["pairs"]
        assert pair["alphas"] == [0.0, 0.5, 1.0] and len(pair["accuracy"]) == len(pair["loss"]) == 3
        # the same model measured twice: identical computations, so exact
        assert pair["accuracy"][0] == mode["endpoints"][0]["accuracy"]
        assert pair["accuracy"][-1] == mode["endpoints"][1]["accuracy"]
        assert pair["accuracy_barrier"] >= 0 and pair["loss_barrier"] >= 0
        assert mode["anchor_drift"] == 0.0
        assert set(mode["fusion"]) >= {"fused_accuracy", "mean_accuracy", "best_accuracy"}
        assert min(endpoint["accuracy"] for endpoint in mode["endpoints"]) > 0.5  # it trained
    # matching only permutes: the endpoints of weight_matching are those of vanilla. A permutation
    # reorders the sums inside the matmuls, so losses agree to rounding only (CPU-dependent last bits).
    for matched, plain in zip(data["modes"]["weight_matching"]["endpoints"], data["modes"]["vanilla"]["endpoints"],
                              strict=True):
        assert matched["accuracy"] == pytest.approx(plain["accuracy"], abs=2e-3 + 1e-9)  # 2 flips of 1,000 images
        assert matched["loss"] == pytest.approx(plain["loss"], rel=1e-5)
    png = (tmp_path / "lmc.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert "LMC barriers and fusion" in result.stdout
