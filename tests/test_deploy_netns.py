"""Deployment across hosts, with faults: the SuperLink and each SuperNode in a network namespace of its own.

One module fixture builds the hosts (tests/netns.py: namespaces ``link``, ``node0``, ``node1`` on a
bridge in a namespace of its own, addresses 10.231.0.1-3 on veth ends inside them, nothing in the
root namespace), certificates whose SAN is the SuperLink's namespace address, and one deployment
with TLS, SuperNode authentication and a SuperLink state database; the daemons, the ``flwr`` CLI and
the status queries run through ``ip netns exec``. The tests share it, in this order: a run with a
clean round 1 and a straggler beyond ``round_timeout`` in round 2, node1's link cut for 30 s in
round 2, and the SuperLink killed in round 2 then restarted, after which ``resume=<run dir>``
finishes the run. Each prints one ``fault table:`` line. Everything is removed in teardown, also
when a test fails; without root, ``ip`` or namespaces the module skips with one line. Together
~3 min on a busy 2-core machine: every deployed round starts a ClientApp process per client and
Flower polls every 3 s, the cut lasts 30 s, and straggling rounds last ``round_timeout``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from fedtna.config import RunConfig
from fedtna.deploy import COMPLETED, DeploymentError, LocalDeployment, compose_run_config
from fedtna.deploy.cli import main
from fedtna.deploy.local import DeployResult
from fedtna.deploy.processes import listening
from fedtna.fl.faults import Fault, fault_for
from fedtna.fl.resume import resolve_resume
from fedtna.masks import derive_seed
from tests.netns import Topology, netns_unavailable, remove_stale

# one worker runs the whole module (pyproject: --dist loadfile): its hosts are shared, never built twice at once

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
HOSTS = ("link", "node0", "node1")
BASE = ["num_clients=2", "dataset=mnist5k", "model=mlp", "model.hidden_sizes=[16]", "strategy=fedavg",
        "local_epochs=1", "batch_size=64", "progress=false", "device=cpu"]
TRAIN_RECEIVED = "Receiving: train message"  # a SuperNode logs this for every train message it pulls
ROUND_TIMEOUT = 20  # s; a clean round takes ~6-12 s on a busy 2-core machine
CUT_SECONDS = 30
RUN_TIMEOUT = 300


@dataclass
class Hosts:
    """The shared topology and deployment."""

    topology: Topology
    deployment: LocalDeployment


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    reason = netns_unavailable() or (None if shutil.which("openssl") else "scripts/make_certs.sh needs openssl")
    if reason:
        pytest.skip(reason)
    remove_stale()
    work = tmp_path_factory.mktemp("netns")
    topology = Topology(HOSTS)
    started: list = []
    try:
        topology.create()
        link = topology.address("link")
        subprocess.run(["bash", str(SCRIPTS / "make_certs.sh"), str(work / "certs")], capture_output=True, check=True,
                       timeout=60, env={**os.environ, "SUPERLINK_SAN": f"IP:{link}"})
        with LocalDeployment(2, log_dir=work / "logs", work_dir=work / "work", certs_dir=work / "certs", auth=True,
                             host=link, superlink_prefix=topology.prefix("link"), database=True,
                             supernode_prefixes=[topology.prefix("node0"), topology.prefix("node1")]) as deployment:
            started = deployment.daemons
            yield Hosts(topology, deployment)
    finally:
        topology.remove()
        leftovers = [daemon.name for daemon in started if not daemon.finished()]
        assert not leftovers, f"still running after teardown: {leftovers}"


def config_for(tmp_path: Path, *overrides: str) -> RunConfig:
    """The small run config of these tests with ``overrides``, results in ``tmp_path/out``."""
    return compose_run_config([*BASE, *overrides], tmp_path / "out")


def table_line(fault: str, result: DeployResult | None, did: str, rows: list[dict]) -> None:
    """Print one row of the fault table: fault | what the run did | rounds completed | final accuracy."""
    accuracy = rows[-1]["test_accuracy"] if rows else float("nan")
    status = result.status if result is not None else "-"
    print(f"\nfault table: {fault} | {did} ({status}) | {len(rows)} | {accuracy:.3f}")


class LogWatch:
    """Counts lines of a daemon log written after it was created (the log is shared by all runs)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, path.stat().st_size if path.is_file() else 0

    def count(self, text: str) -> int:
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            return handle.read().decode(errors="replace").count(text)

    def wait_for(self, text: str, times: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count(text) < times:
            assert time.monotonic() < deadline, f"{self.path.name}: {text!r} not seen {times}x within {timeout:.0f} s"
            time.sleep(0.1)


def rows_of(output_dir: Path) -> list[dict]:
    path = output_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


# ---- fast: no namespaces needed ---------------------------------------------------------------


def test_listening_sees_sockets_through_proc(tmp_path: Path) -> None:
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        assert not listening(os.getpid(), f"127.0.0.1:{port}")  # bound, not listening yet
        server.listen()
        assert listening(os.getpid(), f"127.0.0.1:{port}")
        assert not listening(os.getpid(), f"10.231.0.9:{port}")


def test_fedtna_deploy_resume_continues_the_named_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    """``fedtna-deploy resume=<dir>`` deploys the saved run into its own folder; a finished one is not rerun."""
    import fedtna.deploy.cli as cli
    from fedtna.fl.checkpoint import Checkpoint, save_checkpoint
    from fedtna.fl.experiment import write_config

    run_dir = tmp_path / "run"
    write_config(replace(config_for(tmp_path, "num_rounds=3", "seed=4"), output_dir=str(run_dir)))
    save_checkpoint(run_dir, Checkpoint(1, {}, [{"round": 1}]))
    deployed: list[RunConfig] = []

    def record(config: RunConfig, **_: object) -> DeployResult:
        deployed.append(config)
        return DeployResult(9, COMPLETED, Path(config.output_dir), tmp_path, {})

    monkeypatch.setattr(cli, "deploy_local", record)
    assert main([f"resume={run_dir}", "--no-prepare"]) == 0
    assert deployed[0].output_dir == str(run_dir) and deployed[0].resume == str(run_dir)
    assert (deployed[0].seed, deployed[0].num_rounds) == (4, 3)  # the saved config, not the defaults
    assert main([f"resume={run_dir}", "seed=5"]) == 2  # a resumed run keeps its config
    assert "differ from the saved run" in capsys.readouterr().err
    (run_dir / "summary.json").write_text(json.dumps({"status": "completed", "rounds": 3}))
    assert main([f"resume={run_dir}"]) == 0 and len(deployed) == 1  # finished: printed, not deployed
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rounds"] == 3


# ---- across namespaces -----------------------------------------------------------------------


def straggler_seed(probability: float, rounds: int) -> int:
    """The first seed whose fault draws delay partition 1 in the last round and nobody else."""
    from fedtna.config.schema import FaultSettings

    faults = FaultSettings(crash=0.0, nan=0.0, delay=probability, delay_seconds=0.0)

    def delayed(seed: int) -> list[tuple[int, int]]:
        return [(r, p) for r in range(1, rounds + 1) for p in range(2)
                if fault_for(derive_seed(seed, "round", r), p, faults) is Fault.DELAY]

    return next(seed for seed in range(1000) if delayed(seed) == [(rounds, 1)])


@pytest.mark.slow
def test_tls_auth_run_across_namespaces_completes_and_counts_a_straggler(hosts: Hosts, tmp_path: Path) -> None:
    """Round 1 is clean; in round 2 partition 1 sleeps past round_timeout (faults.delay): the round goes on
    without it and counts it failed, and the run completes."""
    deployment, topology = hosts.deployment, hosts.topology
    link = topology.address("link")
    superlink, *supernodes = deployment.daemons
    assert superlink.argv[:4] == topology.prefix("link") and deployment.fleet.startswith(f"{link}:")
    assert "--insecure" not in superlink.argv and "--enable-supernode-auth" in superlink.argv
    for daemon, host in zip(supernodes, ("node0", "node1"), strict=True):
        assert daemon.argv[:4] == topology.prefix(host)
        assert daemon.argv[daemon.argv.index("--superlink") + 1] == deployment.fleet
        assert "--auth-supernode-private-key" in daemon.argv and "--root-certificates" in daemon.argv
    seed = straggler_seed(0.3, 2)
    config = config_for(tmp_path, "num_rounds=2", f"seed={seed}", "faults.delay=0.3",
                        f"faults.delay_seconds={ROUND_TIMEOUT + 6}", f"round_timeout={ROUND_TIMEOUT}")
    result = deployment.run(config, timeout=RUN_TIMEOUT)
    rows = result.rows()
    assert result.status == COMPLETED
    assert [(row["round"], row["clients"], row["failed_clients"]) for row in rows] == [(1, 2, 0), (2, 1, 1)]
    assert rows[1]["seconds"] >= ROUND_TIMEOUT  # round 2 waited for the straggler until round_timeout
    assert rows[-1]["test_accuracy"] > 0.5
    assert deployment.supernode_status() == dict.fromkeys(deployment.node_ids.values(), "online")
    table_line(f"straggler: partition 1 sleeps {ROUND_TIMEOUT + 6} s > round_timeout={ROUND_TIMEOUT} in round 2",
               result, "round 1 clean; round 2 closed at round_timeout without it, failed_clients=1", rows)


@pytest.mark.slow
def test_link_cut_for_30_s_in_round_2_then_the_node_rejoins(hosts: Hosts, tmp_path: Path) -> None:
    """node1's link goes down once it pulled its round-2 message and comes back 30 s later."""
    deployment, topology = hosts.deployment, hosts.topology
    config = config_for(tmp_path, "num_rounds=6", f"round_timeout={ROUND_TIMEOUT}")
    log = LogWatch(deployment.log_dir / "supernode-1.log")
    run_id = deployment.submit(config)
    cut_at = None
    try:
        log.wait_for(TRAIN_RECEIVED, 2, timeout=180)
        topology.cut("node1")
        cut_at = time.monotonic()
        while time.monotonic() - cut_at < CUT_SECONDS:
            deployment.check_daemons()
            time.sleep(1)
    finally:
        topology.restore("node1")
    status = deployment.wait(run_id, timeout=RUN_TIMEOUT, output_dir=config.output_dir)
    rows = rows_of(Path(config.output_dir))
    failed = [row["failed_clients"] for row in rows]
    assert status == COMPLETED and [row["round"] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert failed[0] == 0 and failed[1] == 1  # round 2 closed at round_timeout without node1
    # node1 rejoined: it took part in a later round. Its reconnect back-off (up to ~20 s) and the stale
    # round-3 message it pulls first can make it miss rounds 3 and 4 as well; each missed round counts it.
    assert 0 in failed[2:] and set(failed) <= {0, 1}
    assert all(row["clients"] + row["failed_clients"] == 2 for row in rows)
    assert log.count(TRAIN_RECEIVED) >= 4  # it pulled messages of later rounds after the link came back
    table_line(f"link of node1 cut {CUT_SECONDS} s in round 2", DeployResult(run_id, status, Path(config.output_dir),
               deployment.log_dir), f"node1 rejoined; failed_clients per round {failed}", rows)


@pytest.mark.slow
def test_superlink_killed_in_round_2_then_resume_finishes_the_run(hosts: Hosts, tmp_path: Path) -> None:
    """SIGKILL the SuperLink (and its ServerApp) in round 2, restart it on its database, resume from round 1."""
    deployment = hosts.deployment
    overrides = ["num_rounds=2", f"round_timeout={ROUND_TIMEOUT * 3}"]
    config = config_for(tmp_path, *overrides)
    output_dir = Path(config.output_dir)
    log = LogWatch(deployment.log_dir / "supernode-1.log")
    run_id = deployment.submit(config)
    log.wait_for(TRAIN_RECEIVED, 2, timeout=180)
    superlink = deployment.daemons[0]
    os.killpg(superlink.process.pid, signal.SIGKILL)
    superlink.process.wait(timeout=30)
    before = rows_of(output_dir)
    assert [row["round"] for row in before] == [1]
    with pytest.raises(DeploymentError) as lost:
        deployment.wait(run_id, timeout=60, output_dir=output_dir)
    said = str(lost.value).splitlines()[0]
    assert said == (f"the SuperLink exited with code -9 during run {run_id}: the run is lost; "
                    f"round 1 is checkpointed: resume={output_dir} continues it")
    print(f"\nfedtna: {said}")
    statuses = deployment.restart_superlink()  # same database: same nodes and keys, the lost run stopped
    assert statuses[run_id] == "finished:stopped"
    print(f"after the restart Flower lists run {run_id} as {statuses[run_id]}")

    resumed, finished = resolve_resume(compose_run_config([*BASE, *overrides, f"resume={output_dir}"], None),
                                       [*overrides, f"resume={output_dir}"])  # what fedtna-deploy resume=... runs
    assert finished is None and resumed.output_dir == str(output_dir)
    result = deployment.run(resumed, timeout=RUN_TIMEOUT)
    rows = result.rows()
    assert result.status == COMPLETED and result.run_id != run_id
    assert [row["round"] for row in rows] == [1, 2] and rows[0] == before[0]  # round 1 kept as it was
    assert rows[1]["clients"] == 2 and rows[1]["failed_clients"] == 0
    assert json.loads(result.summary_path.read_text())["rounds"] == 2
    table_line("SuperLink SIGKILLed in round 2, restarted on its database", result,
               f"run {run_id} lost ({statuses[run_id]}); resume= finished it as run {result.run_id}", rows)
