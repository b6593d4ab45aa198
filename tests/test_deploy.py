"""Real Flower deployment on loopback: SuperLink + SuperNodes over gRPC, the same apps.

The end-to-end tests share one deployment (module fixture) and take ~1 min on an idle
2-core machine (each deployment round starts a fresh ClientApp process per client);
the daemons are stopped in the fixture's teardown, also when a test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

import fedtna
from fedtna.config import RunConfig, parse_run_config
from fedtna.deploy import (
    COMPLETED, DeploymentError, LocalDeployment, commands_for, compose_run_config, free_ports,
    read_run_config_toml, stage_app, write_run_config_toml,
)
from fedtna.deploy.cli import main
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
    assert pyproject["tool"]["flwr"]["app"]["config"] == {"cfg-json": ""}


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
@pytest.mark.skipif(shutil.which("openssl") is None, reason="scripts/make_certs.sh needs openssl")
def test_tls_deployment_completes_a_run(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    subprocess.run(["bash", str(SCRIPTS / "make_certs.sh"), str(certs)], capture_output=True, check=True,
                   timeout=60)
    config = compose_run_config(TLS_OVERRIDES, tmp_path / "out")
    with LocalDeployment(1, log_dir=tmp_path / "logs", certs_dir=certs) as running:
        assert "--insecure" not in running.daemons[0].argv + running.daemons[1].argv
        result = running.run(config, timeout=300)
    assert result.status == COMPLETED and [row["round"] for row in result.rows()] == [1]
