"""``simulation.ray_address``: a run joins a ``ray start --head`` cluster (on loopback here) and leaves it running.

The head gets its own short temp dir under /tmp (Ray's socket paths must stay short), free ports for
every service and ``--block`` in its own process group, so the test stops exactly the processes it
started. Never ``ray stop``: it kills every Ray process of the user on the machine, other people's
experiments included.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedtna.config.checks import check_run_config
from fedtna.config.entry import compose_run_config
from fedtna.errors import ConfigError
from fedtna.fl.engines.ray import backend_config, check_actor_fits, start_ray

RAY = Path(sys.executable).with_name("ray")
HEAD_START_SECONDS = 90
# Ray resolves 127.0.0.1 to the machine's address unless this is 0; with it, every service binds loopback
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (held open together, so no duplicates)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def processes_mentioning(text: str) -> list[int]:
    """PIDs of this user's processes whose command line contains ``text`` (the head's unique temp dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:  # exited meanwhile
            continue
    return found


def environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    return {**env, **LOOPBACK_ENV}


@pytest.fixture(scope="module")
def ray_head() -> Iterator[tuple[str, Path, subprocess.Popen]]:
    """A one-node Ray cluster on 127.0.0.1 with 2 CPUs: (address, temp dir, the ``ray start --block`` process)."""
    temp_dir = Path(tempfile.mkdtemp(prefix="frc", dir="/tmp"))
    ports = free_ports(9 + 16)
    gcs, client, dashboard, node_manager, object_manager, agent_http, agent_grpc, runtime_env, metrics = ports[:9]
    log = (temp_dir / "head.log").open("w")
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs}",
         f"--ray-client-server-port={client}", "--include-dashboard=false", f"--dashboard-port={dashboard}",
         f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}",
         f"--dashboard-agent-listen-port={agent_http}", f"--dashboard-agent-grpc-port={agent_grpc}",
         f"--runtime-env-agent-port={runtime_env}", f"--metrics-export-port={metrics}",
         f"--worker-port-list={','.join(map(str, ports[9:]))}", "--num-cpus=2", "--num-gpus=0",
         "--disable-usage-stats", f"--temp-dir={temp_dir}"],
        stdout=log, stderr=subprocess.STDOUT, env=environment(), start_new_session=True)
    try:
        deadline = time.monotonic() + HEAD_START_SECONDS
        while "Ray runtime started" not in (temp_dir / "head.log").read_text():
            assert head.poll() is None, (temp_dir / "head.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Ray head did not start in time"
            time.sleep(0.5)
        yield f"127.0.0.1:{gcs}", temp_dir, head
    finally:
        stop_head(head, temp_dir)
        log.close()
        leftovers = processes_mentioning(str(temp_dir))
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not leftovers, f"Ray processes of the test's head survived: {leftovers}"


def stop_head(head: subprocess.Popen, temp_dir: Path) -> None:
    """SIGTERM the head's process group (``ray start --block`` stops its children), then make sure that
    nothing carrying the head's temp dir survives; only these processes are ours to kill."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, sig)
        try:
            head.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        deadline = time.monotonic() + wait
        while processes_mentioning(str(temp_dir)) and time.monotonic() < deadline:
            time.sleep(0.5)
        if not processes_mentioning(str(temp_dir)):
            return
    for pid in processes_mentioning(str(temp_dir)):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_run_joins_the_cluster_and_leaves_it_running(ray_head, tmp_path: Path) -> None:
    address, temp_dir, head = ray_head
    run_dir = tmp_path / "run"
    run = subprocess.Popen(
        [sys.executable, "-m", "fedtna.run", f"simulation.ray_address={address}", "num_clients=3", "num_rounds=2",
         "model=mlp", "model.hidden_sizes=[32]", "progress=false", "print_config=false", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["rounds"] == 2
    assert summary["ray_address"] == address
    assert (summary["ray_nodes"], summary["ray_num_cpus"], summary["ray_client_actors"]) == (1, 2, 2)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["round"] for row in rows] == [1, 2] and rows[-1]["test_accuracy"] > 0.3
    # the run was this cluster's driver: its core-driver log, named with its pid, is in the head's session
    logs = temp_dir / "session_latest" / "logs"
    assert list(logs.glob(f"python-core-driver-*_{run.pid}.log")), sorted(p.name for p in logs.iterdir())
    assert list(logs.glob("worker-*-01000000-*.out")), "no worker of the run's job (01000000) on the cluster"
    # Flower's ray.shutdown() only disconnected the driver: the head is still up and serving
    assert head.poll() is None
    with socket.create_connection(("127.0.0.1", int(address.rsplit(":", 1)[1])), timeout=5):
        pass


def test_an_address_nobody_serves_is_one_error_line(tmp_path: Path) -> None:
    """``ray.init`` would retry for minutes; a TCP probe answers at once (no Ray is started)."""
    (port,) = free_ports(1)
    config = compose_run_config([f"simulation.ray_address=127.0.0.1:{port}"], tmp_path)
    check_run_config(config)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=rf"simulation.ray_address=127.0.0.1:{port}: no Ray head answers there"):
        start_ray(config, backend_config(config))
    assert time.monotonic() - started < 10


def test_cluster_settings_are_checked(tmp_path: Path) -> None:
    config = compose_run_config(["simulation.ray_address=10.0.0.5:6379"], tmp_path)
    assert backend_config(config)["init_args"] == {"address": "10.0.0.5:6379", "logging_level": 40,
                                                   "log_to_driver": False}
    with pytest.raises(ConfigError, match=r"simulation.num_cpus=4 cannot be combined with simulation.ray_address"):
        check_actor_fits(compose_run_config(["simulation.ray_address=10.0.0.5:6379", "simulation.num_cpus=4"],
                                            tmp_path))
    for bad in ("ray://10.0.0.5:10001", "auto", "10.0.0.5", "10.0.0.5:70000"):
        with pytest.raises(ConfigError, match=r"simulation.ray_address=.* is outside the allowed range host:port"):
            check_run_config(compose_run_config([f"simulation.ray_address={bad}"], tmp_path))
