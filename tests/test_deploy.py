"""Real Flower deployment on loopback: SuperLink + SuperNodes over gRPC, the same apps.

Two end-to-end tests share one deployment (module fixture, ~1 min on an idle 2-core machine:
each deployment round starts a fresh ClientApp process per client); TLS (~30 s), SuperNode
authentication (~30 s) and a SuperNode killed in round 2 (~2 min, most of it Flower's
heartbeat timeout) bring their own. Daemons are stopped in teardown, also when a test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

import fedtna
from fedtna.config import RunConfig, parse_run_config
from fedtna.deploy import (
    COMPLETED,
    DeploymentError,
    LocalDeployment,
    commands_for,
    compose_run_config,
    free_ports,
    read_run_config_toml,
    stage_app,
    write_run_config_toml,
)
from fedtna.deploy.auth import check_node_key, make_node_key, make_node_keys
from fedtna.deploy.cli import main
from fedtna.deploy.local import DeployResult
from fedtna.deploy.processes import processes_with_environment, start_daemon
from fedtna.errors import ConfigError

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
DEPLOY_OVERRIDES = [
    "num_clients=2", "num_rounds=2", "dataset=mnist5k", "model=mlp", "model.hidden_sizes=[32]",
    "strategy=fedpfn", "mask_ratio=0.3", "local_epochs=1", "batch_size=64", "progress=false",
    "device=cpu",
]
TLS_OVERRIDES = [
    "num_clients=1", "num_rounds=1", "dataset=mnist5k", "model=mlp", "model.hidden_sizes=[16]",
    "strategy=fedavg", "local_epochs=1", "batch_size=64", "progress=false", "device=cpu",
]
SMALL_OVERRIDES = [override for override in TLS_OVERRIDES if not override.startswith(("num_clients", "num_rounds"))]
TRAIN_RECEIVED = "Receiving: train message"  # what a SuperNode logs for every train message it pulls


def make_certs(directory: Path) -> Path:
    """scripts/make_certs.sh into ``directory``."""
    subprocess.run(["bash", str(SCRIPTS / "make_certs.sh"), str(directory)], capture_output=True, check=True,
                   timeout=60)
    return directory


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="scripts/make_certs.sh needs openssl")


# ---- run config -------------------------------------------------------------------


def test_run_config_toml_round_trips_nested_values(tmp_path: Path) -> None:
    from flwr.common.config import parse_config_args
    from flwr.common.serde import user_config_from_proto, user_config_to_proto

    config = {
        "strategy": {"name": "fedpfn", "server_options": {"betas": [0.9, 0.99], "note": "it's \"quoted\""}},
        "mask": {"scope": ["conv1", "fc1"], "granularity": "weight", "per_round": True},
        "model": {"hidden_sizes": [200, [3, 4]], "nothing": None},
        "text": "apostrophe ' double \" backslash \\ newline \n tab \t unicode ρ ✓ '''",
        "seed": 2**63 - 1, "lr": 1e-3, "empty": {}, "list_of_dicts": [{"a": 1}, {"b": "x'y"}],
        "output_dir": str(tmp_path / "out dir with spaces"),
    }
    path = write_run_config_toml(config, tmp_path / "sub" / "run_config.toml")
    assert path.is_file()
    assert read_run_config_toml(path) == config
    # what `flwr run --run-config <toml>` sends and the apps receive in context.run_config
    parsed = user_config_from_proto(user_config_to_proto(parse_config_args([str(path)])))
    assert set(parsed) == {"cfg-json"}
    assert json.loads(parsed["cfg-json"]) == config


def test_typed_config_survives_the_toml(tmp_path: Path) -> None:
    config = compose_run_config(DEPLOY_OVERRIDES, tmp_path / "out")
    path = write_run_config_toml(config, tmp_path / "run_config.toml")
    assert parse_run_config(read_run_config_toml(path)) == config


def test_compose_run_config_applies_overrides_and_is_absolute(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = compose_run_config(DEPLOY_OVERRIDES, tmp_path / "rel" / ".." / "out")
    assert isinstance(config, RunConfig)
    assert config.output_dir == str((tmp_path / "out").resolve())
    assert (config.num_clients, config.num_rounds, config.mask_ratio) == (2, 2, 0.3)
    assert config.strategy_spec.name == "fedpfn"
    monkeypatch.chdir(tmp_path)
    default = Path(compose_run_config(["strategy=fedpfn"]).output_dir)
    assert default.is_relative_to(tmp_path.resolve() / "outputs" / "deploy") and default.name.endswith("_fedpfn")
    assert not (tmp_path / "outputs").exists()  # composing writes nothing


@pytest.mark.parametrize("overrides", [["strategy=nope"], ["num_clients=abc"], ["no_such_key=1"]])
def test_bad_overrides_are_one_line_config_errors(overrides: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        compose_run_config(overrides)
    assert "\n" not in str(caught.value)


# ---- the staged Flower app ------------------------------------------------------------


def test_staged_app_builds_a_fab_with_both_apps(tmp_path: Path) -> None:
    from flwr.cli.build import build_fab_from_disk
    from flwr.cli.config_utils import load_and_validate

    app_dir = stage_app(tmp_path / "fedtna-app")
    _, warnings = load_and_validate(app_dir / "pyproject.toml")  # what `flwr run` checks first
    assert warnings == []
    fab = zipfile.ZipFile(BytesIO(build_fab_from_disk(app_dir)))
    names = set(fab.namelist())
    assert {"pyproject.toml", "fedtna/__init__.py", "fedtna/fl/server_app.py", "fedtna/fl/client_app.py",
            "fedtna/conf/config.yaml", "fedtna/conf/strategy/fedpfn.yaml"} <= names
    assert all(name.startswith(("fedtna/", ".info/")) or name == "pyproject.toml" for name in names)
    assert not any("__pycache__" in name for name in names)
    pyproject = tomllib.loads(fab.read("pyproject.toml").decode())
    assert pyproject["project"]["version"] == fedtna.__version__
    assert pyproject["tool"]["flwr"]["app"]["components"] == {
        "serverapp": "fedtna.fl.server_app:app", "clientapp": "fedtna.fl.client_app:app"}
    assert pyproject["tool"]["flwr"]["app"]["config"] == {"cfg-json": "", "overrides": ""}


def test_staging_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "fedtna-app").mkdir()
    (tmp_path / "fedtna-app" / "stale.py").write_text("")
    with pytest.raises(DeploymentError):
        stage_app(tmp_path / "fedtna-app")


@pytest.mark.slow
def test_app_is_staged_from_an_installed_package_without_the_checkout(tmp_path: Path) -> None:
    """A copy of the package on PYTHONPATH, run from elsewhere: staging uses the copy, nothing else."""
    site = tmp_path / "site-packages"
    shutil.copytree(Path(fedtna.__file__).parent, site / "fedtna", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "fedtna" / "only_in_the_copy.py").write_text('"""Marks the installed copy."""\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import sys, fedtna; from fedtna.deploy import stage_app; "
            "print(fedtna.__file__); stage_app(sys.argv[1])")
    env = {**os.environ, "PYTHONPATH": str(site)}
    completed = subprocess.run([sys.executable, "-c", code, str(tmp_path / "fedtna-app")], cwd=elsewhere,
                               env=env, capture_output=True, text=True, timeout=120, check=True)
    assert Path(completed.stdout.strip()).is_relative_to(site)
    staged = tmp_path / "fedtna-app"
    assert (staged / "fedtna" / "only_in_the_copy.py").is_file()
    assert (staged / "fedtna" / "conf" / "config.yaml").is_file()
    assert (staged / "fedtna" / "fl" / "server_app.py").is_file()
    assert sorted(path.name for path in staged.iterdir()) == ["fedtna", "pyproject.toml"]


# ---- commands and the CLI --------------------------------------------------------------


def test_free_ports_are_distinct() -> None:
    ports = free_ports(6)
    assert len(set(ports)) == 6 and all(0 < port < 65536 for port in ports)


def test_commands_for_serves_every_partition_over_tls(tmp_path: Path) -> None:
    lines = "\n".join(commands_for(tmp_path / "run.toml", 2, "10.0.0.5", "certs", tmp_path / "app"))
    assert "--ssl-certfile certs/server.pem" in lines and "--root-certificates certs/ca.crt" in lines
    assert "--insecure" not in lines
    assert "partition-id=0 num-partitions=2" in lines and "partition-id=1 num-partitions=2" in lines
    assert f"flwr run {tmp_path / 'app'} fedtna-remote --run-config {tmp_path / 'run.toml'}" in lines


def test_print_commands_writes_the_toml_and_the_app(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["num_clients=3", "strategy=fedpfn", "--output-dir", str(tmp_path), "--print-commands",
            "--superlink-host", "10.0.0.5"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "--fleet-api-address 0.0.0.0:9092" in printed
    assert printed.count("flower-supernode") == 3
    assert "--superlink 10.0.0.5:9092" in printed and "partition-id=2 num-partitions=3" in printed
    assert read_run_config_toml(tmp_path / "deploy" / "run_config.toml")["num_clients"] == 3
    assert (tmp_path / "deploy" / "fedtna-app" / "pyproject.toml").is_file()
    assert main(argv) == 0  # a second time over the same output dir re-stages the app


def test_cli_bad_override_is_one_error_line_and_exit_2(capsys: pytest.CaptureFixture) -> None:
    assert main(["strategy=nope", "--print-commands"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


# ---- SuperNode authentication: keys, commands, refusals without TLS ------------------------


def test_node_keys_are_what_flower_reads(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key
    from flwr.cli.supernode.register import try_load_public_key
    from flwr.supercore.primitives.asymmetric import public_key_to_bytes

    keys = make_node_keys(tmp_path / "keys", 2)
    assert [key.name for key in keys] == ["supernode-0", "supernode-1"]
    for key in keys:
        check_node_key(key.private_key)  # flower-supernode --auth-supernode-private-key loads it this way
        assert key.private_key.stat().st_mode & 0o077 == 0
        private = load_ssh_private_key(key.private_key.read_bytes(), None)
        assert private.curve.name == "secp384r1"
        # `flwr supernode register` loads the public key file like this
        assert try_load_public_key(key.public_key) == public_key_to_bytes(private.public_key())
    assert keys[0].public_key.read_bytes() != keys[1].public_key.read_bytes()
    assert make_node_key(tmp_path / "keys", "supernode-0") == keys[0]  # existing keys are kept
    with pytest.raises(DeploymentError):
        check_node_key(keys[0].public_key)


def test_auth_commands_register_every_key_and_hand_out_private_keys(tmp_path: Path) -> None:
    keys = make_node_keys(tmp_path / "keys", 2)
    lines = "\n".join(commands_for(tmp_path / "run.toml", 2, "10.0.0.5", "certs", tmp_path / "app", keys))
    assert "--enable-supernode-auth" in lines and "--insecure" not in lines
    for key in keys:
        assert f"flwr supernode register {key.public_key} fedtna-remote" in lines
        assert f"--auth-supernode-private-key keys/{key.name}" in lines
    assert lines.index("flwr supernode register") < lines.index("flower-supernode")
    with pytest.raises(DeploymentError, match="needs TLS"):
        commands_for(tmp_path / "run.toml", 2, "10.0.0.5", None, tmp_path / "app", keys)


def test_auth_without_certs_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["num_clients=2", "--auth", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: SuperNode authentication needs TLS") and "\n" not in err
    assert not any(tmp_path.iterdir())  # refused before anything was written or started
    with pytest.raises(DeploymentError, match="needs TLS"):
        LocalDeployment(2, auth=True)


def test_print_commands_with_auth_writes_the_keys(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    certs = tmp_path / "certs"
    argv = ["num_clients=2", "--output-dir", str(tmp_path / "out"), "--print-commands", "--certs", str(certs),
            "--auth"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    keys = tmp_path / "out" / "deploy" / "keys"
    assert sorted(path.name for path in keys.iterdir()) == ["supernode-0", "supernode-0.pub", "supernode-1",
                                                            "supernode-1.pub"]
    assert printed.count("flwr supernode register") == 2 and "--enable-supernode-auth" in printed


def test_cli_exit_code_says_whether_the_run_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    import fedtna.deploy.cli as cli

    calls: list[dict] = []

    def lost_one(config: RunConfig, **kwargs: object) -> DeployResult:
        calls.append(kwargs)
        return DeployResult(7, COMPLETED, Path(config.output_dir), tmp_path, {}, ["supernode-2"])

    monkeypatch.setattr(cli, "deploy_local", lost_one)
    assert main(["num_clients=3", "--output-dir", str(tmp_path / "out"), "--certs", "certs", "--auth"]) == 0
    assert (calls[0]["certs_dir"], calls[0]["auth"]) == (Path("certs"), True)
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (line["status"], line["lost_supernodes"]) == (COMPLETED, ["supernode-2"])

    def failed(config: RunConfig, **_: object) -> DeployResult:
        raise DeploymentError("run 7 ended 'finished:failed'")

    monkeypatch.setattr(cli, "deploy_local", failed)
    assert main(["num_clients=3", "--output-dir", str(tmp_path / "out")]) == 1
    assert "finished:failed" in capsys.readouterr().err


@pytest.mark.slow
def test_a_lost_supernode_is_tolerated_only_after_the_first_round(tmp_path: Path) -> None:
    running = LocalDeployment(2, log_dir=tmp_path / "logs", work_dir=tmp_path / "work")
    try:
        superlink = start_daemon("superlink", ["sleep", "60"], os.environ, tmp_path / "logs" / "superlink.log")
        alive = start_daemon("supernode-0", ["sleep", "60"], os.environ, tmp_path / "logs" / "supernode-0.log")
        dead = start_daemon("supernode-1", [sys.executable, "-c", "raise SystemExit(3)"], os.environ,
                            tmp_path / "logs" / "supernode-1.log")
        running.daemons, running.supernodes = [superlink, alive, dead], [alive, dead]
        dead.process.wait(timeout=30)
        with pytest.raises(DeploymentError, match="supernode-1 exited with code 3"):
            running.check_daemons()
        running.check_daemons(tolerate_lost_supernodes=True)
        assert running.lost_supernodes == ["supernode-1"]
        alive.kill()
        with pytest.raises(DeploymentError, match="every SuperNode exited"):
            running.check_daemons(tolerate_lost_supernodes=True)
        superlink.kill()
        with pytest.raises(DeploymentError, match="superlink exited"):
            running.check_daemons(tolerate_lost_supernodes=True)
    finally:
        running.stop()


@pytest.mark.slow
def test_script_shim_exits_with_mains_code(tmp_path: Path) -> None:
    completed = subprocess.run([sys.executable, str(SCRIPTS / "deploy_local.py"), "num_clients=abc"],
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert completed.stderr.strip().startswith("error: num_clients=")


# ---- real deployment -------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("deploy")
    started: list = []
    try:
        with LocalDeployment(2, log_dir=work / "logs", work_dir=work / "work") as running:
            started = list(running.daemons)
            yield running
    finally:
        # nothing may outlive the test: daemons and their flower-superexec / flwr-*app children
        leftovers = [daemon.name for daemon in started if not daemon.finished()]
        assert not leftovers, f"still running after teardown: {leftovers}"


@pytest.mark.slow
def test_deployment_runs_fedpfn_end_to_end(deployment: LocalDeployment, tmp_path: Path) -> None:
    config = compose_run_config(DEPLOY_OVERRIDES, tmp_path / "out")
    result = deployment.run(config, timeout=300)
    assert result.status == COMPLETED
    rows = result.rows()
    assert [row["round"] for row in rows] == [1, 2]
    for row in rows:
        assert 0.0 <= row["test_accuracy"] <= 1.0
        assert row["anchor_drift"] == 0.0
        assert row["clients"] == 2 and row["failed_clients"] == 0
        # mask_ratio=0.3 travelled through cfg-json to the ClientApps (default is 0.4)
        assert row["fixed_fraction"] == pytest.approx(0.3, abs=0.02)
    assert rows[-1]["test_accuracy"] > 0.5
    summary = json.loads(result.summary_path.read_text())
    assert summary["rounds"] == 2 and summary["strategy"] == "fedpfn"
    assert (result.output_dir / "model.pt").is_file()
    # the SuperNodes really served partitions 0 and 1 through separate ClientApp processes
    for i in range(2):
        assert "train message" in (deployment.log_dir / f"supernode-{i}.log").read_text()
    print("deployment timings:", result.timings, "round seconds:", [row["seconds"] for row in rows])


@pytest.mark.slow
def test_failed_run_raises_with_flwr_log(deployment: LocalDeployment, tmp_path: Path) -> None:
    broken = {"output_dir": str(tmp_path / "broken"), "num_clients": 2}  # no dataset: the ServerApp raises
    with pytest.raises(DeploymentError) as caught:
        deployment.run(broken, timeout=180)
    message = str(caught.value)
    assert "finished:failed" in message and "flwr log" in message
    assert "ConfigError" in message


@pytest.mark.slow
@needs_openssl
def test_tls_deployment_completes_a_run(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    config = compose_run_config(TLS_OVERRIDES, tmp_path / "out")
    with LocalDeployment(1, log_dir=tmp_path / "logs", certs_dir=certs) as running:
        assert "--insecure" not in running.daemons[0].argv + running.daemons[1].argv
        result = running.run(config, timeout=300)
    assert result.status == COMPLETED and [row["round"] for row in result.rows()] == [1]


@pytest.mark.slow
@needs_openssl
def test_supernode_auth_admits_registered_nodes_only(tmp_path: Path) -> None:
    """Registered nodes train to completion; a node with an unregistered key is refused and exits."""
    certs = make_certs(tmp_path / "certs")
    config = compose_run_config(["num_clients=2", "num_rounds=1", *SMALL_OVERRIDES], tmp_path / "out")
    with LocalDeployment(2, log_dir=tmp_path / "logs", certs_dir=certs, auth=True) as running:
        assert "--enable-supernode-auth" in running.daemons[0].argv
        for supernode, key in zip(running.supernodes, running.node_keys, strict=True):
            assert supernode.argv[supernode.argv.index("--auth-supernode-private-key") + 1] == str(key.private_key)
        # same CA, TLS and partition as supernode-0, but a key nobody registered: had it joined, the
        # ServerApp would have failed with "two nodes claim partition-id=0"
        stranger = make_node_key(tmp_path / "stranger", "stranger")
        intruder = running.start_supernode(0, name="intruder", private_key=stranger.private_key)
        assert intruder.process.wait(timeout=90) != 0
        assert "No SuperNode found with the given public key" in intruder.log_tail(80)
        result = running.run(config, timeout=300)
        nodes = running.supernode_status()
        assert nodes == dict.fromkeys(running.node_ids.values(), "online")  # the intruder is unknown
        assert "Activation failed: No SuperNode found with the given public key" in \
            (running.log_dir / "superlink.log").read_text()
    assert result.status == COMPLETED
    assert [(row["round"], row["clients"], row["failed_clients"]) for row in result.rows()] == [(1, 2, 0)]
    for i in range(2):
        assert TRAIN_RECEIVED in (result.log_dir / f"supernode-{i}.log").read_text()
    assert TRAIN_RECEIVED not in (result.log_dir / "intruder.log").read_text()


def _supernode_child(parent: int, partition_id: int) -> int:
    """The pid of the flower-supernode child of ``parent`` serving ``partition_id``."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = int(next(line.split()[1] for line in status.read_text().splitlines() if line.startswith("PPid:")))
            argv = (status.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, StopIteration, ValueError):
            continue
        if ppid == parent and any(arg.endswith(b"flower-supernode") for arg in argv) \
                and f"partition-id={partition_id} ".encode() in b" ".join(argv) + b" ":
            return int(status.parent.name)
    raise AssertionError(f"no flower-supernode for partition {partition_id} under pid {parent}")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the SuperNode through /proc")
def test_run_survives_a_supernode_killed_in_round_2(tmp_path: Path) -> None:
    """fedtna-deploy with 3 SuperNodes; supernode-2 is SIGKILLed once it pulled its round-2 message.

    Flower answers messages to the dead node with a "node unavailable" error once its heartbeat
    lapses (30 s interval, 2 missed), so round 2 waits for that (<= ~60 s), later rounds fail fast.
    """
    out, marker = tmp_path / "out", tmp_path / "tmp"
    marker.mkdir()  # TMPDIR, inherited by everything the CLI starts: finds leftovers afterwards
    argv = [sys.executable, str(SCRIPTS / "deploy_local.py"), "num_clients=3", "num_rounds=3", *SMALL_OVERRIDES,
            "--output-dir", str(out), "--timeout", "240"]
    started = time.monotonic()
    with (tmp_path / "stdout").open("w") as stdout, (tmp_path / "stderr").open("w") as stderr:
        cli = subprocess.Popen(argv, cwd=tmp_path, env={**os.environ, "TMPDIR": str(marker)}, stdout=stdout,
                               stderr=stderr, stdin=subprocess.DEVNULL)
    try:
        log = out / "deploy" / "supernode-2.log"
        deadline = time.monotonic() + 180
        while not (log.is_file() and log.read_text(errors="replace").count(TRAIN_RECEIVED) >= 2):
            assert cli.poll() is None, (tmp_path / "stderr").read_text()
            assert time.monotonic() < deadline, "supernode-2 never received its round-2 message"
            time.sleep(0.1)
        rounds_done = len((out / "metrics.jsonl").read_text().splitlines())
        os.killpg(_supernode_child(cli.pid, 2), signal.SIGKILL)  # the node, its SuperExec and its ClientApp
        killed_at = time.monotonic() - started
        returncode = cli.wait(timeout=240)
    finally:
        if cli.poll() is None:
            cli.terminate()  # SIGTERM: fedtna-deploy stops its daemons
            cli.wait(timeout=60)
    elapsed = time.monotonic() - started
    stderr_text = (tmp_path / "stderr").read_text()
    assert returncode == 0, stderr_text
    assert rounds_done == 1
    summary = json.loads((tmp_path / "stdout").read_text().strip().splitlines()[-1])
    assert summary["status"] == COMPLETED and summary["lost_supernodes"] == ["supernode-2"]
    assert "warning: supernode-2 exited with code -9" in stderr_text
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(row["round"], row["clients"], row["failed_clients"]) for row in rows] == [(1, 3, 0), (2, 2, 1),
                                                                                      (3, 2, 1)]
    assert json.loads((out / "deploy" / "deploy.json").read_text())["lost_supernodes"] == ["supernode-2"]
    assert processes_with_environment("TMPDIR", str(marker)) == []  # every daemon of the CLI is gone
    print(f"killed at {killed_at:.0f} s; run finished at {elapsed:.0f} s; "
          f"round seconds {[row['seconds'] for row in rows]}")
