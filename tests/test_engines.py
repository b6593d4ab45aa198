"""Engines are interchangeable: local (in process or a worker pool) and Ray give identical runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from flwr.app import ConfigRecord, Message, MessageType, RecordDict

from fedtna.errors import ConfigError
from fedtna.fl.engines import available_engines, check_backend, resolve_backend
from fedtna.fl.engines.local import InProcess, LocalGrid, WorkerPool, node_ids
from fedtna.fl.experiment import run_experiment
from tests.conftest import compose_run_config

SMALL = ["num_clients=3", "num_rounds=2", "local_epochs=1", "batch_size=64", "model=mlp", "progress=false",
         "print_config=false"]


def rows_without_time(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("seconds", None)
    return rows


def assert_identical_runs(first: Path, second: Path) -> None:
    assert rows_without_time(first) == rows_without_time(second)
    model_a, model_b = torch.load(first / "model.pt"), torch.load(second / "model.pt")
    assert model_a.keys() == model_b.keys()
    assert all(torch.equal(model_a[name], model_b[name]) for name in model_a)


def run(tmp_path: Path, name: str, *overrides: str) -> dict:
    return run_experiment(compose_run_config(tmp_path / name, *SMALL, *overrides))


def test_auto_is_local_on_one_machine_and_ray_for_a_cluster(tmp_path: Path) -> None:
    assert resolve_backend(compose_run_config(tmp_path, *SMALL)) == "local"
    assert resolve_backend(compose_run_config(tmp_path, *SMALL, "simulation.ray_address=127.0.0.1:6379")) == "ray"
    assert resolve_backend(compose_run_config(tmp_path, *SMALL, "simulation.backend=ray")) == "ray"
    assert {"auto", "local", "ray"} <= set(available_engines())


@pytest.mark.parametrize(("overrides", "expected"), [
    (["simulation.backend=spark"], "simulation.backend='spark' is not one of ['auto', "),
    (["simulation.backend=local", "simulation.ray_address=127.0.0.1:6379"],
     "simulation.ray_address=127.0.0.1:6379 needs simulation.backend=ray or auto"),
])
def test_a_wrong_backend_is_one_line(tmp_path: Path, overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        check_backend(compose_run_config(tmp_path, *SMALL, *overrides))
    assert str(raised.value).startswith(expected)


def test_local_workers_below_zero_is_refused(tmp_path: Path) -> None:
    from fedtna.config.checks import check_run_config

    with pytest.raises(ConfigError, match=r"simulation.local_workers=-1 is outside the allowed range >= 0"):
        check_run_config(compose_run_config(tmp_path, *SMALL, "simulation.local_workers=-1"))


def test_node_ids_are_seeded_distinct_and_not_partition_ids() -> None:
    ids = node_ids(0, 100)
    assert ids == node_ids(0, 100) and len(set(ids)) == 100
    assert not set(ids) & set(range(100))
    assert node_ids(1, 100) != ids


def query(node: int) -> Message:
    return Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=node, message_type=MessageType.QUERY)


def test_a_client_exception_is_an_error_reply_and_late_replies_are_dropped(tmp_path: Path, monkeypatch) -> None:
    config = compose_run_config(tmp_path, *SMALL)
    grid = LocalGrid(InProcess(config), 3, seed=0)
    nodes = list(grid.get_node_ids())
    replies = grid.send_and_receive([query(node) for node in nodes], timeout=60)
    assert len(replies) == 3 and all(reply.has_error() for reply in replies)  # a simulated node holds no partition
    assert {reply.metadata.src_node_id for reply in replies} == set(nodes)
    assert all("KeyError" in reply.error.reason for reply in replies)
    calls = []

    def slow_app(message: Message, context) -> Message:
        calls.append(message.metadata.dst_node_id)
        if len(calls) == 1:
            raise RuntimeError("boom")
        time.sleep(0.3)
        return Message(RecordDict(), reply_to=message)

    monkeypatch.setattr(grid.delivery, "app", slow_app)
    replies = list(grid.send_and_receive([query(node) for node in nodes], timeout=0.2))
    assert len(replies) == 1 and replies[0].has_error()  # the second reply came after 0.3 s: lost, third never sent
    assert "RuntimeError: boom" in replies[0].error.reason and replies[0].metadata.src_node_id == nodes[0]
    assert calls == nodes[:2]


@pytest.mark.slow
def test_a_worker_pool_gives_the_in_process_run(tmp_path: Path) -> None:
    run(tmp_path, "inprocess", "strategy=fedpfn")
    summary = run(tmp_path, "pool", "strategy=fedpfn", "simulation.local_workers=2")
    assert summary["engine"] == "local" and summary["local_workers"] == 2
    assert_identical_runs(tmp_path / "inprocess", tmp_path / "pool")


@pytest.mark.slow
def test_a_worker_pool_answers_a_crash_with_an_error_reply(tmp_path: Path) -> None:
    config = compose_run_config(tmp_path, *SMALL, "faults.crash=1.0")
    pool = WorkerPool(config, workers=1)
    try:
        grid = LocalGrid(pool, 3, seed=0)
        from fedtna.fl.strategies import build_strategy

        strategy = build_strategy(config)
        model = torch.nn.Linear(1, 1)
        strategy.attach(dict(enumerate(grid.get_node_ids())), {n: p.shape for n, p in model.named_parameters()})
        from flwr.app import ArrayRecord

        messages = list(strategy.configure_train(1, ArrayRecord(model.state_dict()), ConfigRecord(), grid))
        replies = list(grid.send_and_receive(messages, timeout=120))
    finally:
        pool.close()
    assert len(replies) == 3 and all(reply.has_error() for reply in replies)
    assert all("InjectedCrash" in reply.error.reason for reply in replies)


FEDPFN_FEDADAM = ("strategy=fedpfn", "strategy.server=fedadam", "+strategy.server_options.eta=0.01")


@pytest.mark.slow
@pytest.mark.parametrize("method", [("strategy=fedavg",), FEDPFN_FEDADAM], ids=["fedavg", "fedpfn-fedadam"])
def test_local_and_ray_give_identical_runs(tmp_path: Path, method: tuple[str, ...]) -> None:
    local = run(tmp_path, "local", *method, "simulation.backend=local")
    ray = run(tmp_path, "ray", *method, "simulation.backend=ray")
    assert (local["engine"], ray["engine"]) == ("local", "ray")
    assert local["status"] == ray["status"] == "completed" and local["rounds"] == ray["rounds"] == 2
    assert_identical_runs(tmp_path / "local", tmp_path / "ray")


def test_vectorized_refuses_batch_norm_models_before_any_work(tmp_path: Path) -> None:
    config = compose_run_config(tmp_path, *SMALL, "model=vgg11", "simulation.backend=vectorized")
    with pytest.raises(ConfigError) as raised:
        check_backend(config)
    assert "\n" not in str(raised.value) and "simulation.backend=local or ray" in str(raised.value)


@pytest.mark.slow
def test_vectorized_run_follows_the_local_run(tmp_path: Path) -> None:
    """The same replies reach aggregation (same clients, same counts); after one round the global model, the
    mean of the clients' weights, agrees within 1e-4 (float32 sums in another order)."""
    local = run(tmp_path, "local", "strategy=fedpfn", "num_rounds=1", "simulation.backend=local")
    vectorized = run(tmp_path, "vectorized", "strategy=fedpfn", "num_rounds=1", "simulation.backend=vectorized")
    assert vectorized["engine"] == "vectorized" and 0.0 <= vectorized["padding_waste"] < 0.5
    assert abs(vectorized["final_test_accuracy"] - local["final_test_accuracy"]) <= 0.005
    local_rows, vectorized_rows = rows_without_time(tmp_path / "local"), rows_without_time(tmp_path / "vectorized")
    for mine, theirs in zip(vectorized_rows, local_rows, strict=True):
        assert (mine["clients"], mine["failed_clients"], mine["rejected_clients"]) == (
            theirs["clients"], theirs["failed_clients"], theirs["rejected_clients"])
        assert mine["anchor_drift"] == theirs["anchor_drift"] == 0.0
        assert mine["fixed_fraction"] == theirs["fixed_fraction"]
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-4)
    model_a, model_b = torch.load(tmp_path / "local" / "model.pt"), torch.load(tmp_path / "vectorized" / "model.pt")
    assert max(float((model_a[name] - model_b[name]).abs().max()) for name in model_a) < 1e-4


@pytest.mark.slow
def test_local_and_vectorized_runs_import_neither_ray_nor_wandb(tmp_path: Path) -> None:
    """The lent GPU machine has no Ray and no wandb (scripts/gpu_check.sh): a whole run under either engine,
    through fedtna.run's entry point, must not import them, nor uv (flwr needs it only in a SuperExec)."""
    script = (
        "import sys\n"
        "from fedtna.run import main\n"
        "for backend in ('local', 'vectorized'):\n"
        f"    sys.argv = ['fedtna.run', *{SMALL!r}, 'num_rounds=1', f'simulation.backend={{backend}}',\n"
        f"                f'hydra.run.dir={tmp_path}/{{backend}}']\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as stop:\n"
        "        assert not stop.code, stop.code\n"
        "print('IMPORTED', sorted({name.split('.')[0] for name in sys.modules} & {'ray', 'wandb', 'uv'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "IMPORTED []" in result.stdout.splitlines(), result.stdout[-2000:]
    for backend in ("local", "vectorized"):
        assert json.loads((tmp_path / backend / "summary.json").read_text())["engine"] == backend
