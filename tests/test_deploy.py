"""Real Flower deployment on loopback: SuperLink + 2 SuperNodes over gRPC, the same apps.

The end-to-end tests share one deployment (module fixture) and take ~40 s on an idle
2-core machine (each deployment round starts a fresh ClientApp process per client);
the daemons are stopped in the fixture's teardown, also when a test fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from fedtna.deploy import (
    COMPLETED, DeploymentError, LocalDeployment, compose_run_config, free_ports, read_run_config_toml,
    stage_app, write_run_config_toml,
)
from tests.conftest import REPO, compose_run_config as conftest_compose

DEPLOY_OVERRIDES = [
    "num_clients=2", "num_rounds=2", "dataset=mnist5k", "model=mlp", "model.hidden_sizes=[32]",
    "strategy=fedpfn", "mask_ratio=0.3", "local_epochs=1", "batch_size=64", "progress=false",
    "device=cpu",
]


# ---- fast unit tests ------------------------------------------------------------


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


def test_compose_run_config_matches_hydra_and_is_absolute(tmp_path: Path) -> None:
    composed = compose_run_config(DEPLOY_OVERRIDES, tmp_path / "rel" / ".." / "out")
    assert composed == conftest_compose(tmp_path / "out", *DEPLOY_OVERRIDES)
    assert Path(composed["output_dir"]).is_absolute()
    default = compose_run_config(["strategy=fedpfn"])
    assert Path(default["output_dir"]).is_absolute() and default["output_dir"].endswith("_fedpfn")


def test_staged_app_builds_a_fab_with_both_apps(tmp_path: Path) -> None:
    from flwr.cli.build import build_fab_from_disk

    fab = build_fab_from_disk(stage_app(tmp_path / "fedtna-app", REPO))
    names = set(zipfile.ZipFile(BytesIO(fab)).namelist())
    assert {"pyproject.toml", "fedtna/server_app.py", "fedtna/clients/client_app.py", "fedtna/deploy.py",
            "conf/config.yaml", "conf/strategy/fedpfn.yaml"} <= names
    assert not any(name.startswith((".venv/", "outputs/", "tests/")) for name in names)


def test_free_ports_are_distinct() -> None:
    ports = free_ports(6)
    assert len(set(ports)) == 6 and all(0 < port < 65536 for port in ports)


def test_print_commands_writes_the_toml(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "deploy_local.py"), "num_clients=3", "strategy=fedpfn",
         "--output-dir", str(tmp_path), "--print-commands", "--superlink-host", "10.0.0.5"],
        capture_output=True, text=True, timeout=120, check=True)
    assert "--fleet-api-address 0.0.0.0:9092" in completed.stdout
    assert completed.stdout.count("flower-supernode") == 3
    assert "--superlink 10.0.0.5:9092" in completed.stdout and "partition-id=2 num-partitions=3" in completed.stdout
    assert read_run_config_toml(tmp_path / "deploy" / "run_config.toml")["num_clients"] == 3


# ---- real deployment -------------------------------------------------------------


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


def test_deployment_runs_fedpfn_end_to_end(deployment: LocalDeployment, tmp_path: Path) -> None:
    run_config = compose_run_config(DEPLOY_OVERRIDES, tmp_path / "out")
    result = deployment.run(run_config, timeout=240)
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


def test_failed_run_raises_with_flwr_log(deployment: LocalDeployment, tmp_path: Path) -> None:
    broken = {"output_dir": str(tmp_path / "broken"), "num_clients": 2}  # no dataset: the ServerApp raises
    with pytest.raises(DeploymentError) as caught:
        deployment.run(broken, timeout=180)
    message = str(caught.value)
    assert "finished:failed" in message and "flwr log" in message
    assert "KeyError" in message or "dataset" in message
