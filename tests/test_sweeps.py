"""Sweeps: Ray sized per job for parallel launchers, joblib / submitit_local end to end, wandb
grouping of a sweep (offline), an Optuna search. The end-to-end tests start subprocesses (slow)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from omegaconf import open_dict

from fedtna.config.checks import check_run_config
from fedtna.config.entry import CONF_DIR, compose_run_config
from fedtna.config.plugins import OPTUNA, importable
from fedtna.errors import ConfigError
from fedtna.fl.engines.ray import backend_config, jobs_per_machine, machine_cpus, ray_num_cpus
from fedtna.fl.results import WandbLogger
from fedtna.run import objective

# the sweeps extra installs hydra-optuna-sweeper on Python 3.11 only (it needs optuna<3)
needs_optuna = pytest.mark.skipif(not importable(OPTUNA), reason="hydra-optuna-sweeper is not installed")

TINY = ["num_clients=3", "num_rounds=2", "model=mlp", "model.hidden_sizes=[32]", "progress=false",
        "print_config=false"]


# ---- Ray sizing and wandb identity, read from the Hydra job (fast, in-process) ----------------------

@contextmanager
def hydra_job(*overrides: str, multirun: bool = True) -> Iterator[None]:
    """Make this process look like a Hydra job composed with ``overrides`` (what a launcher sets up)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN if multirun else RunMode.RUN
    HydraConfig.instance().set_config(cfg)
    try:
        yield
    finally:
        HydraConfig.instance().cfg = None


def test_outside_hydra_one_job_gets_the_whole_machine(tmp_path: Path) -> None:
    config = compose_run_config([], tmp_path)
    assert jobs_per_machine(config) == 1 and ray_num_cpus(config) == machine_cpus()
    assert backend_config(config)["init_args"]["address"] == "local"  # never joins another Ray
    assert ray_num_cpus(compose_run_config(["simulation.num_cpus=3"], tmp_path)) == 3


def test_joblib_jobs_share_the_machine(tmp_path: Path) -> None:
    config = compose_run_config([], tmp_path)
    with hydra_job("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"):
        assert jobs_per_machine(config) == 2
        assert ray_num_cpus(config) == max(1, machine_cpus() // 2)
        assert backend_config(config)["init_args"]["num_cpus"] == max(1, machine_cpus() // 2)
        assert ray_num_cpus(compose_run_config(["simulation.num_cpus=3"], tmp_path)) == 3  # explicit wins
        assert jobs_per_machine(compose_run_config(["simulation.jobs_per_machine=5"], tmp_path)) == 5
    with hydra_job("hydra/launcher=joblib", "hydra.launcher.n_jobs=-1"):  # joblib: one job per CPU
        import joblib

        assert jobs_per_machine(config) == joblib.cpu_count()
    with hydra_job("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", multirun=False):
        assert jobs_per_machine(config) == 1


@needs_optuna
def test_optuna_batches_cap_the_joblib_jobs(tmp_path: Path) -> None:
    config = compose_run_config([], tmp_path)
    with hydra_job("hydra/launcher=joblib", "hydra.launcher.n_jobs=4", "hydra/sweeper=optuna",
                   "hydra.sweeper.n_jobs=2"):  # Optuna launches 2 trials at a time
        assert jobs_per_machine(config) == 2


def test_basic_and_submitit_launchers(tmp_path: Path) -> None:
    config = compose_run_config([], tmp_path)
    with hydra_job():  # basic launcher: jobs run one after another
        assert jobs_per_machine(config) == 1 and ray_num_cpus(config) == machine_cpus()
    with hydra_job("hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1"):
        assert ray_num_cpus(config) == 1
    with hydra_job("hydra/launcher=slurm"):  # the example Slurm config asks for 8 CPUs per task
        assert ray_num_cpus(config) == min(8, machine_cpus())


def test_jobs_per_machine_is_range_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"simulation.jobs_per_machine=0 is outside the allowed range"):
        check_run_config(compose_run_config(["simulation.jobs_per_machine=0"], tmp_path))


def test_wandb_identity_single_run_and_sweep(tmp_path: Path) -> None:
    config = compose_run_config(["wandb.group=g", "strategy=fedpnu"], tmp_path)
    plain = {"strategy": {"name": "fedpnu"}}
    assert WandbLogger.run_identity(config.wandb, plain) == {"group": "g", "name": None}
    with hydra_job("strategy=fedpnu", "seed=3", "hydra.sweep.dir=sweeps/s1"):
        bare = compose_run_config([], tmp_path).wandb
        assert WandbLogger.run_identity(bare, plain) == {"group": "sweeps/s1", "job_type": "fedpnu",
                                                         "name": "seed=3,strategy=fedpnu"}
        assert WandbLogger.run_identity(config.wandb, plain)["group"] == "g"  # an explicit group is kept


# ---- end to end: a multirun in a subprocess ---------------------------------------------------------

def multirun(tmp_path: Path, *overrides: str, env: dict[str, str] | None = None) -> Path:
    sweep_dir = tmp_path / "sweep"
    result = subprocess.run([sys.executable, "-m", "fedtna.run", "-m", *TINY, *overrides,
                             f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep_dir


def without_ray(tmp_path: Path) -> dict[str, str]:
    """An environment in which importing Ray fails: a job that starts Ray fails the sweep."""
    fake = tmp_path / "no-ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('this sweep must not import Ray')\n")
    path = os.pathsep.join(filter(None, [str(fake.parent), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def summaries(sweep_dir: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(sweep_dir.glob("*/summary.json"))]


def wandb_run_records(path: Path) -> list:
    """The ``run`` records of an offline ``.wandb`` file (W&B's LevelDB-style log of protobuf Records):
    a 7-byte file header, then 32 KiB blocks of chunks, each with a 7-byte header (CRC, length, type)."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    position, pending, runs = 7, b"", []
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if kind == 0 and length == 0:  # zero padding to the end of the block
            position += left
            continue
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "run":
                runs.append(record.run)
    return runs


@pytest.mark.slow
def test_joblib_runs_two_jobs_at_once_and_wandb_groups_the_sweep(tmp_path: Path) -> None:
    """Two jobs in parallel, each with its share of the CPUs; wandb offline: one group for the sweep,
    job type = strategy, run name = the job's override string."""
    env = {**without_ray(tmp_path), "WANDB_SILENT": "true"}
    env.pop("WANDB_MODE", None)
    sweep_dir = multirun(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "strategy=fedavg,fedpfn",
                         "wandb.mode=offline", "wandb.project=fedtna-test", env=env)
    runs = summaries(sweep_dir)
    assert sorted(run["strategy"] for run in runs) == ["fedavg", "fedpfn"]
    assert all(run["rounds"] == 2 and run["engine"] == "local" for run in runs)  # no Ray per job
    job_dirs = sorted(path for path in sweep_dir.iterdir() if path.is_dir() and not path.name.startswith("."))
    assert len(job_dirs) == 2
    for job_dir, strategy in zip(job_dirs, ("fedavg", "fedpfn"), strict=True):
        offline = list((job_dir / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(offline) == 1, job_dir
        runs = wandb_run_records(offline[0])
        assert runs, "no run record in the offline file"
        run = runs[-1]
        assert run.run_group == str(sweep_dir)
        assert run.job_type == strategy
        assert run.display_name == job_dir.name.split("_", 1)[1]  # the job's override string
        assert run.project == "fedtna-test"


@pytest.mark.slow
def test_submitit_local_runs_two_jobs(tmp_path: Path) -> None:
    sweep_dir = multirun(tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1",
                         "hydra.launcher.timeout_min=10", "seed=0,1", env=without_ray(tmp_path))
    runs = summaries(sweep_dir)
    assert len(runs) == 2 and sorted(run["seed"] for run in runs) == [0, 1]
    assert all(run["rounds"] == 2 and run["engine"] == "local" for run in runs)


@pytest.mark.slow
@needs_optuna
def test_optuna_search_writes_the_best_parameters(tmp_path: Path) -> None:
    sweep_dir = multirun(tmp_path, "+experiment=optuna_search", "hydra.sweeper.n_trials=2")
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna"
    assert set(results["best_params"]) == {"mask_ratio", "lr"}
    assert 0.1 <= results["best_params"]["mask_ratio"] <= 0.8
    assert 0.005 <= results["best_params"]["lr"] <= 0.2
    runs = summaries(sweep_dir)
    assert len(runs) == 2 and all(run["strategy"] == "fedpfn" for run in runs)
    assert any(run["last5_mean_val_accuracy"] != run["last5_mean_test_accuracy"] for run in runs)
    assert results["best_value"] == pytest.approx(max(run["last5_mean_val_accuracy"] for run in runs))


def test_a_sweeper_maximises_validation_accuracy_when_data_is_held_out() -> None:
    both = {"status": "completed", "last5_mean_test_accuracy": 0.9, "last5_mean_val_accuracy": 0.8}
    assert objective(both) == 0.8  # the test set never chooses
    assert objective({"status": "completed", "last5_mean_test_accuracy": 0.9}) == 0.9  # validation_fraction=0
    assert objective({**both, "status": "failed"}) is None
    assert objective({**both, "last5_mean_val_accuracy": None}) is None  # held out, but no validation value


# ---- a sweep survives its worst job -----------------------------------------------------------------

# the command: job 0 diverges in round 1 (NaN updates), job 1 learns
DIVERGING = ["lr=50,0.05", "num_rounds=3", "num_clients=3", "model=mlp", "progress=false", "print_config=false"]


def sweep_cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedtna.run", "-m", *overrides,
                           f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, check=False)


def assert_the_diverged_job_is_recorded_and_reported(sweep_dir: Path, result: subprocess.CompletedProcess) -> Path:
    assert result.returncode == 3, result.stderr[-3000:]
    assert "error: 1 job of the sweep failed" in result.stderr
    (diverged,), (learned,) = sweep_dir.glob("0_*"), sweep_dir.glob("1_*")
    failed = json.loads((diverged / "summary.json").read_text())
    assert failed["status"] == "failed" and failed["failure"] == "diverged" and failed["completed_rounds"] == 0
    assert "lr=50.0 is likely too high" in failed["reason"]
    done = json.loads((learned / "summary.json").read_text())
    assert done["status"] == "completed" and done["rounds"] == 3
    report = (sweep_dir / "report.md").read_text()
    assert "## Failed jobs" in report and f"| {diverged.name} | lr=50 " in report and "| 0 of 3 |" in report
    document = json.loads((sweep_dir / "report.json").read_text())
    assert [group["runs"] for group in document["fl"]["groups"]] == [[str(learned)]]  # the failure is not averaged
    assert "Failed jobs" in result.stdout
    return diverged


@pytest.mark.slow
def test_a_diverging_job_does_not_stop_the_sweep_and_resume_auto_skips_it(tmp_path: Path) -> None:
    result = sweep_cli(tmp_path, *DIVERGING)
    diverged = assert_the_diverged_job_is_recorded_and_reported(tmp_path / "sweep", result)
    recorded = {path.name: path.read_bytes() for path in diverged.iterdir() if path.is_file()}
    again = sweep_cli(tmp_path, *DIVERGING, "resume=auto")
    assert again.returncode == 3 and f"skipped: {diverged} diverged before" in again.stderr, again.stderr[-3000:]
    assert {path.name: path.read_bytes() for path in diverged.iterdir() if path.is_file()} == recorded


@pytest.mark.slow
def test_a_diverging_job_does_not_stop_a_joblib_sweep(tmp_path: Path) -> None:
    result = sweep_cli(tmp_path, *DIVERGING, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert_the_diverged_job_is_recorded_and_reported(tmp_path / "sweep", result)


@pytest.mark.slow
def test_bad_input_in_a_sweep_stops_it_with_one_line(tmp_path: Path) -> None:
    result = sweep_cli(tmp_path, *TINY, "strategy=fedpfn", "mask_ratio=1.0,0.5")
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip() and "[HYDRA]" not in line]
    assert lines == ["error: mask_ratio=1.0 is outside the allowed range [0, 1)"]
    assert not list((tmp_path / "sweep").glob("1_*"))  # the job after it never started


def test_cgroup_cpu_quota_reads_v2_and_v1(tmp_path) -> None:
    from fedtna.fl.engines.ray import cgroup_cpu_quota

    assert cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 2.5
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(v1) == 3.0
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(v1) is None
