"""``scripts/evidence.sh tuned`` end to end on a tiny grid: its folders, and a report whose choices are the runs'
best validation accuracy (slow: it starts a sweep per method, mu and seed)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evidence.sh"
TINY = "model=mlp model.hidden_sizes=[32] num_clients=10 num_rounds=3 local_epochs=1 eval_every=1"


def val_last5(run: Path) -> float:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    values = [row["val_accuracy"] for row in rows if "val_accuracy" in row]
    return statistics.fmean(values[-5:])


@pytest.mark.slow
def test_the_tuned_part_runs_each_grid_and_selects_on_validation(tmp_path: Path) -> None:
    env = {**os.environ, "ROOT": str(tmp_path), "REGIMES": "drift", "METHODS": "fedavg fedprox", "SEEDS": "0,1",
           "LRS": "0.05,0.1", "MUS": "0.01,0.1", "EXTRA": TINY, "JOBS": "2",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    result = subprocess.run(["bash", str(SCRIPT), "tuned"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    tuned = tmp_path / "tuned" / "drift"
    folders = {"fedavg": ["fedavg"], "fedprox": ["fedprox/mu0.01", "fedprox/mu0.1"]}
    grids: dict[str, dict[tuple[float, float], list[float]]] = {}
    for method, variants in folders.items():
        for variant in variants:
            for seed in (0, 1):
                runs = sorted(p.parent for p in (tuned / variant / f"seed{seed}").glob("*/summary.json"))
                assert len(runs) == 2, f"{variant}/seed{seed}: {runs}"  # one job per lr
                for run in runs:
                    config = json.loads((run / "config.json").read_text())
                    assert config["seed"] == seed and config["validation_fraction"] == 0.1
                    mu = config["strategy"]["proximal_mu"] if method == "fedprox" else 0.0
                    grids.setdefault(method, {}).setdefault((config["lr"], mu), []).append(val_last5(run))
    report = json.loads((tuned / "report.json").read_text())["fl"]["selection"]
    assert report["keys"] == ["lr", "strategy.proximal_mu"]
    chosen = {entry["method"]: entry["chosen"] for entry in report["methods"]}
    for method, grid in grids.items():
        assert all(len(scores) == 2 for scores in grid.values())  # every value has both seeds
        order = sorted(grid)  # grid order: a tie keeps the lower value
        lr, mu = max(order, key=lambda values: (statistics.fmean(grid[values]), -order.index(values)))
        label = next(label for label in chosen if f"strategy={method}" in label)
        assert chosen[label] == f"lr={lr:g}" + (f" strategy.proximal_mu={mu:g}" if method == "fedprox" else ""), grid
