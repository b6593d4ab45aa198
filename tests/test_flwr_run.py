"""``flwr run`` on the project itself, as Flower users do: Flower's local simulation SuperLink.

``flwr run <project>`` with the ``local`` connection starts a detached SuperLink
(``flower-superlink --simulation``, its own session, state and log under
``$FLWR_HOME/local-superlink``, Control API on 127.0.0.1:$FLWR_LOCAL_CONTROL_API_PORT) that
outlives the command. The test gives it a private FLWR_HOME and port, checks the run through
``flwr ls --run-id <id> --format json`` (``flwr run`` exits 0 even for failed runs) and stops
every process started under that FLWR_HOME, the SuperLink with its SuperExec, simulation
and Ray processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flwr.app import Context, RecordDict

from fedtna.config.entry import compose_overrides_config
from fedtna.deploy.processes import free_ports, processes_with_environment, stop_processes
from fedtna.deploy.run_config import plain_run_config
from fedtna.errors import ConfigError
from fedtna.fl.client_app import run_config_from_flower
from fedtna.fl.server_app import config_from_flower_run, run_server
from tests.conftest import FAST, InProcessGrid

PROJECT = Path(__file__).resolve().parents[1]
OVERRIDES = "num_rounds=2 model=mlp num_clients=3 progress=false"


# ---- the run config `flwr run` hands the apps ---------------------------------------------


def test_empty_cfg_json_composes_the_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = run_config_from_flower({"cfg-json": "", "overrides": " strategy=fedpnu  mask_ratio=0.6 "})
    assert (config.strategy_spec.name, config.mask_ratio) == ("fedpnu", 0.6)
    output_dir = Path(config.output_dir)
    assert output_dir.is_absolute() and output_dir.parent.parent == tmp_path.resolve() / "outputs" / "flwr"
    assert output_dir.name.endswith("_fedpnu")
    assert run_config_from_flower({"cfg-json": "", "overrides": ""}).num_clients == 10  # the default experiment
    assert not (tmp_path / "outputs").exists()  # composing writes nothing


def test_cfg_json_wins_over_overrides(tmp_path: Path) -> None:
    written = compose_overrides_config("num_clients=3", tmp_path)
    text = json.dumps(plain_run_config(written))
    assert run_config_from_flower({"cfg-json": text, "overrides": "num_clients=7"}) == written


@pytest.mark.parametrize("overrides", ["strategy=nope", "num_clients=abc", "no_such_key=1"])
def test_bad_overrides_are_one_config_error_line(overrides: str) -> None:
    with pytest.raises(ConfigError) as caught:
        run_config_from_flower({"cfg-json": "", "overrides": overrides})
    assert "\n" not in str(caught.value)


def test_apps_run_from_overrides_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ServerApp and ClientApps each compose the same overrides; the server writes config.json first."""
    monkeypatch.chdir(tmp_path)
    run_config = {"cfg-json": "", "overrides": " ".join([*FAST, "num_clients=3", "strategy=fedpfn"])}
    grid = InProcessGrid(None, 3, run_config=run_config)  # config None: clients read context.run_config
    context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=run_config)
    config = config_from_flower_run(grid, context)
    assert (Path(config.output_dir) / "config.json").is_file()
    assert (Path(config.output_dir) / "label_distribution.png").is_file()  # prepare ran: every check too
    summary = run_server(grid, config)
    assert summary["rounds"] == 2 and summary["strategy"] == "fedpfn"


def test_fewer_simulated_nodes_than_partitions_give_the_same_run(tmp_path: Path) -> None:
    """``flwr run``'s simulation may have fewer nodes than partitions: nodes serve several, results unchanged."""
    results = []
    for nodes in (3, 2):
        config = compose_overrides_config(" ".join([*FAST, "num_clients=3", "strategy=fedpfn"]),
                                          tmp_path / f"nodes{nodes}")
        grid = InProcessGrid(config, nodes)
        summary = run_server(grid, config, simulated_nodes=True, shared_nodes=True)
        assert summary["status"] == "completed"
        assert {message.metadata.dst_node_id for message in grid.delivered} == set(grid.contexts)
        rows = [json.loads(line) for line in (Path(config.output_dir) / "metrics.jsonl").read_text().splitlines()]
        results.append([{key: value for key, value in row.items() if key != "seconds"} for row in rows])
    assert results[0] == results[1]  # identical computation, so exactly equal
    assert all(row["clients"] == 3 for row in results[1])


# ---- flwr run end to end -----------------------------------------------------------------


def _flwr(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 180) -> dict:
    """Run ``flwr <args> --format json`` and return its JSON (raise with the output if it has none)."""
    completed = subprocess.run([str(Path(sys.executable).parent / "flwr"), *args, "--format", "json"], env=env,
                               cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    text = completed.stdout
    try:
        return json.loads(text[text.index("{"):])
    except ValueError:
        raise AssertionError(f"flwr {' '.join(args)} printed no JSON (exit {completed.returncode}):\n"
                             f"{completed.stdout}\n{completed.stderr}") from None


def _wait_finished(run_id: str, env: dict[str, str], cwd: Path, timeout: float) -> dict:
    """Poll ``flwr ls --run-id`` until the run finished; returns its entry."""
    deadline = time.monotonic() + timeout
    while True:
        payload = _flwr(["ls", "--run-id", run_id], env, cwd)
        run = payload["runs"][0]
        if run["status"].startswith("finished") or time.monotonic() > deadline:
            return run
        time.sleep(3)


@pytest.fixture
def flwr_env(tmp_path: Path):
    """A private FLWR_HOME and local Control API port; afterwards nothing started under it runs."""
    home = tmp_path / "flwr-home"
    env = {**os.environ, "FLWR_HOME": str(home), "FLWR_LOCAL_CONTROL_API_PORT": str(free_ports(1)[0]),
           "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
           # what README asks for before `flwr run .`: no per-run `uv sync`, no gRPC fork handlers under Ray
           "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1", "GRPC_ENABLE_FORK_SUPPORT": "0",
           "RAY_USAGE_STATS_ENABLED": "0",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    try:
        yield env
    finally:
        stop_processes(processes_with_environment("FLWR_HOME", str(home)))
        time.sleep(0.5)
        leftovers = processes_with_environment("FLWR_HOME", str(home))
        assert not leftovers, f"processes started under {home} still run: {leftovers}"


@pytest.mark.slow
def test_flwr_run_of_the_project_composes_overrides(flwr_env: dict[str, str], tmp_path: Path) -> None:
    work = tmp_path / "work"  # the SuperLink inherits this cwd: outputs/flwr/... lands here, not in the checkout
    work.mkdir()
    started = time.perf_counter()
    submitted = _flwr(["run", str(PROJECT), "--run-config", f'overrides="{OVERRIDES}"',
                       "--federation-config", "num-supernodes=3"], flwr_env, work)
    assert submitted["success"], submitted
    home = Path(flwr_env["FLWR_HOME"])
    superlinks = [pid for pid in processes_with_environment("FLWR_HOME", str(home))
                  if b"flower-superlink" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert superlinks and all(os.getpgid(pid) == os.getsid(pid) == pid for pid in superlinks)  # detached

    run = _wait_finished(submitted["run-id"], flwr_env, work, timeout=300)
    assert run["status"] == "finished:completed", run
    print(f"flwr run: {time.perf_counter() - started:.1f} s until finished, elapsed {run['elapsed']:.1f} s")
    (output_dir,) = (work / "outputs" / "flwr").glob("*/*_fedavg")
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["round"] for row in rows] == [1, 2]
    assert all(row["clients"] == 3 and row["failed_clients"] == 0 for row in rows)
    config = json.loads((output_dir / "config.json").read_text())
    assert (config["num_clients"], config["num_rounds"], config["model"]["name"]) == (3, 2, "mlp")
    assert (output_dir / "label_distribution.png").is_file()
    assert config["output_dir"] == str(output_dir)
    assert json.loads((output_dir / "summary.json").read_text())["rounds"] == 2
    assert not (home / "runtime-envs").exists()  # no per-run dependency installation

    # plain `flwr run .` (Flower's default federation: 2 SuperNodes) with 3 partitions: the nodes share them
    plain = _flwr(["run", str(PROJECT), "--run-config", f'overrides="{OVERRIDES} strategy=fedpnu"'], flwr_env, work)
    run = _wait_finished(plain["run-id"], flwr_env, work, timeout=180)
    assert run["status"] == "finished:completed", run
    (output_dir,) = (work / "outputs" / "flwr").glob("*/*_fedpnu")
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(row["round"], row["clients"], row["failed_clients"]) for row in rows] == [(1, 3, 0), (2, 3, 0)]
