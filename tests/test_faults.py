"""Faulty clients: injected crashes and NaN updates are counted, rejected, and the run goes on."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from fedtna.config.schema import FaultSettings
from fedtna.errors import RunFailedError
from fedtna.fl.faults import Fault, fault_for
from fedtna.fl.server_app import run_server
from fedtna.masks import derive_seed
from tests.conftest import InProcessGrid


def test_fault_draws_are_seeded_and_follow_the_probabilities() -> None:
    faults = FaultSettings(crash=0.2, nan=0.1, delay=0.0, delay_seconds=0.0)
    draws = [fault_for(derive_seed(0, "round", r), p, faults) for r in range(200) for p in range(10)]
    assert draws == [fault_for(derive_seed(0, "round", r), p, faults) for r in range(200) for p in range(10)]
    counts = Counter(draws)
    assert abs(counts[Fault.CRASH] / len(draws) - 0.2) < 0.03
    assert abs(counts[Fault.NAN] / len(draws) - 0.1) < 0.03
    assert fault_for(123, 4, FaultSettings(crash=0.0, nan=0.0, delay=0.0, delay_seconds=0.0)) is Fault.NONE
    # a delay probability draws stragglers from the clients that neither crash nor reply NaN
    slow = FaultSettings(crash=0.2, nan=0.1, delay=0.3, delay_seconds=5.0)
    delayed = [fault_for(derive_seed(0, "round", r), p, slow) for r in range(200) for p in range(10)]
    assert all(d is e or (e is Fault.NONE and d is Fault.DELAY) for e, d in zip(draws, delayed, strict=True))
    assert abs(Counter(delayed)[Fault.DELAY] / len(delayed) - 0.3) < 0.03


def test_delayed_clients_sleep_then_train(run_config_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    """faults.delay: the drawn clients sleep delay_seconds in the train handler, then reply as usual."""
    import fedtna.fl.client_app as client_app

    slept: list[float] = []
    monkeypatch.setattr(client_app.time, "sleep", slept.append)
    config = run_config_factory("faults.delay=0.5", "faults.delay_seconds=7.5", "num_clients=4", "num_rounds=2",
                                "seed=5")
    summary = run_server(InProcessGrid(config, 4), config)
    assert summary["status"] == "completed"
    expected = sum(fault_for(derive_seed(5, "round", r), p, config.faults) is Fault.DELAY
                   for r in (1, 2) for p in range(4))
    assert expected > 0 and slept.count(7.5) == expected


def test_injected_faults_are_counted_exactly_and_the_run_finishes(run_config_factory) -> None:
    config = run_config_factory("faults.crash=0.2", "faults.nan=0.1", "num_clients=6", "num_rounds=6", "seed=3")
    grid = InProcessGrid(config, 6)
    summary = run_server(grid, config)
    assert summary["status"] == "completed"
    rows = [json.loads(line) for line in (Path(config.output_dir) / "metrics.jsonl").read_text().splitlines()]
    partition_of = {node: int(context.node_config["partition-id"]) for node, context in grid.contexts.items()}
    injected = Counter()
    for message in grid.delivered:
        if message.metadata.message_type == "train":
            server_round = int(message.content["config"]["server-round"])
            partition = partition_of[message.metadata.dst_node_id]
            injected[(server_round, fault_for(derive_seed(3, "round", server_round), partition, config.faults))] += 1
    for row in rows:
        assert row["failed_clients"] == injected[(row["round"], Fault.CRASH)]
        assert row["rejected_clients"] == injected[(row["round"], Fault.NAN)]
        assert row["clients"] == 6 - row["failed_clients"] - row["rejected_clients"]
    assert sum(row["failed_clients"] for row in rows) > 0 and sum(row["rejected_clients"] for row in rows) > 0
    assert rows[-1]["test_accuracy"] > 0.5


def test_min_clients_fraction_fails_a_round_with_too_few_valid_updates(run_config_factory) -> None:
    config = run_config_factory("faults.crash=0.5", "min_clients_fraction=1.0", "num_rounds=3")
    with pytest.raises(RunFailedError, match=r"round 1 \(train\): \d valid of 4 sampled clients, \d failed, "
                                             r"0 rejected; need 4 \(min_clients_fraction=1.0\)"):
        run_server(InProcessGrid(config, 4), config)


@pytest.mark.slow
def test_default_run_with_faults_still_learns(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "fedtna.run", "faults.crash=0.2", "faults.nan=0.1",
                             "progress=false", "print_config=false", f"hydra.run.dir={tmp_path}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["test_accuracy"] >= 0.93
    assert sum(row["failed_clients"] for row in rows) > 0 and sum(row["rejected_clients"] for row in rows) > 0
