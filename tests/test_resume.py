"""Checkpoints and exact resumption: an interrupted run, continued, equals the uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from fedtna.config import RunConfig
from fedtna.errors import ConfigError
from fedtna.fl.checkpoint import load_checkpoint
from fedtna.fl.experiment import write_config
from fedtna.fl.resume import resolve_resume
from fedtna.fl.server_app import run_server
from tests.conftest import InProcessGrid

TIMING = ("seconds",)


class KilledAfter(InProcessGrid):
    """A grid whose server dies (like kill -9) when round ``kill_round`` starts training."""

    def __init__(self, config: RunConfig, num_nodes: int, kill_round: int) -> None:
        super().__init__(config, num_nodes)
        self.kill_round = kill_round

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        if (messages and messages[0].metadata.message_type == "train"
                and int(messages[0].content["config"]["server-round"]) == self.kill_round):
            raise KeyboardInterrupt("killed")
        return super().send_and_receive(messages, timeout=timeout)


def rows_of(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{key: value for key, value in row.items() if key not in TIMING} for row in rows]


def model_of(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model.pt")


@pytest.mark.parametrize("overrides", [("strategy=fedavg",),
                                       ("strategy=fedpfn", "strategy.server=fedadam",
                                        "+strategy.server_options.eta=0.01")],
                         ids=["fedavg", "fedpfn+fedadam"])
def test_interrupted_then_resumed_equals_uninterrupted(run_config_factory, overrides: tuple[str, ...]) -> None:
    whole = run_config_factory(*overrides, "num_rounds=6", "fraction_train=0.5")
    run_server(InProcessGrid(whole, 4), whole)

    broken = run_config_factory(*overrides, "num_rounds=6", "fraction_train=0.5")
    write_config(broken)
    with pytest.raises(KeyboardInterrupt):
        run_server(KilledAfter(broken, 4, kill_round=4), broken)
    assert load_checkpoint(broken.output_dir).server_round == 3
    assert len(rows_of(Path(broken.output_dir))) == 3
    if "strategy.server=fedadam" in overrides:
        assert load_checkpoint(broken.output_dir).server_state["m_t"]  # the moments travel with the checkpoint

    resumed, finished = resolve_resume(replace(broken, resume=broken.output_dir), [f"resume={broken.output_dir}"])
    assert finished is None
    summary = run_server(InProcessGrid(resumed, 4), resumed)
    assert summary["status"] == "completed" and summary["rounds"] == 6
    assert rows_of(Path(broken.output_dir)) == rows_of(Path(whole.output_dir))
    expected, got = model_of(Path(whole.output_dir)), model_of(Path(broken.output_dir))
    assert all(torch.equal(expected[key], got[key]) for key in expected)


def test_resume_refuses_overrides_that_change_the_result(run_config_factory) -> None:
    config = run_config_factory("num_rounds=2")
    write_config(config)
    run_server(InProcessGrid(config, 4), config)
    again = replace(config, resume=config.output_dir, lr=0.5)
    with pytest.raises(ConfigError, match=r"overrides \['lr'\] differ from the saved run"):
        resolve_resume(again, [f"resume={config.output_dir}", "lr=0.5"])
    neutral, _ = resolve_resume(replace(config, resume=config.output_dir, progress=False),
                                [f"resume={config.output_dir}", "progress=false"])
    assert neutral.lr == config.lr


def test_auto_skips_a_finished_job_and_starts_a_new_one_fresh(run_config_factory) -> None:
    config = run_config_factory("num_rounds=2")
    fresh, finished = resolve_resume(replace(config, resume="auto"), ["resume=auto"])
    assert finished is None and fresh.resume == "auto"
    write_config(config)
    run_server(InProcessGrid(config, 4), config)
    _, finished = resolve_resume(replace(config, resume="auto"), ["resume=auto"])
    assert finished is not None and finished["status"] == "completed" and finished["rounds"] == 2


SMALL = ["num_clients=3", "model=mlp", "model.hidden_sizes=[32]", "progress=false",
         "print_config=false", "batch_size=64"]


def _cli(*overrides: str, cwd: Path) -> subprocess.Popen:
    flags = [item for item in overrides if item.startswith("-")]
    overrides = tuple(item for item in overrides if not item.startswith("-"))
    return subprocess.Popen([sys.executable, "-m", "fedtna.run", *flags, *SMALL, *overrides], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.slow
@pytest.mark.parametrize("method", [(), ("strategy=fedpfn", "strategy.server=fedadam",
                                         "+strategy.server_options.eta=0.01")], ids=["fedavg", "fedpfn+fedadam"])
def test_kill_9_after_round_3_then_resume_is_identical(tmp_path: Path, method: tuple[str, ...]) -> None:
    whole = _cli(*method, "num_rounds=6", f"hydra.run.dir={tmp_path / 'whole'}", cwd=tmp_path)
    assert whole.wait(timeout=600) == 0, whole.stderr.read()[-2000:]

    killed_dir = tmp_path / "killed"
    victim = _cli(*method, "num_rounds=6", f"hydra.run.dir={killed_dir}", cwd=tmp_path)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        checkpoint = load_checkpoint(killed_dir) if (killed_dir / "checkpoint.pkl").exists() else None
        if checkpoint is not None and checkpoint.server_round >= 3:
            os.killpg(victim.pid, signal.SIGKILL)  # the run and its Ray workers, mid-run
            break
        assert victim.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    victim.wait(timeout=60)
    assert not (killed_dir / "model.pt").exists()
    interrupted_at = load_checkpoint(killed_dir).server_round
    assert 3 <= interrupted_at < 6

    resumed = _cli(f"resume={killed_dir}", f"hydra.run.dir={tmp_path / 'resume-log'}", cwd=tmp_path)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()[-2000:]
    assert rows_of(killed_dir) == rows_of(tmp_path / "whole")
    expected, got = model_of(tmp_path / "whole"), model_of(killed_dir)
    assert all(torch.equal(expected[key], got[key]) for key in expected)


def test_a_diverging_run_stops_at_once_and_keeps_its_rounds(run_config_factory) -> None:
    from fedtna.errors import RunFailedError

    config = run_config_factory("lr=50", "num_rounds=3")
    with pytest.raises(RunFailedError, match=r"round 1 .* not finite: the run diverged, the client learning rate "
                                             r"lr=50.0 is likely too high"):
        run_server(InProcessGrid(config, 4), config)
    summary = json.loads((Path(config.output_dir) / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["rounds"] == 0
    assert summary["failure"] == "diverged" and summary["completed_rounds"] == 0
    assert summary["reason"].startswith("round 1 (train)") and "lr=50.0 is likely too high" in summary["reason"]


def test_a_global_model_gone_non_finite_fails_the_run_after_recording_the_round(run_config_factory,
                                                                               monkeypatch) -> None:
    """FedAdam with a huge server step diverges on the server side: the round is kept, the run stops."""
    from fedtna.errors import RunFailedError

    config = run_config_factory("strategy.server=fedadam", "+strategy.server_options.eta=1e38",
                                "+strategy.server_options.tau=1e-38", "num_rounds=4")
    with pytest.raises(RunFailedError, match=r"the run diverged .* lr="):
        run_server(InProcessGrid(config, 4), config)
    rows = rows_of(Path(config.output_dir))
    assert rows and rows[-1]["test_loss"] is None


@pytest.mark.slow
def test_a_killed_multirun_resumes_skipping_finished_jobs(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    common = ["-m", "seed=0,1", "num_rounds=4", f"hydra.sweep.dir={sweep}"]
    victim = _cli(*common, cwd=tmp_path)
    deadline = time.monotonic() + 600
    second = None
    while time.monotonic() < deadline and second is None:
        for folder in sweep.glob("1_*"):
            checkpoint = load_checkpoint(folder) if (folder / "checkpoint.pkl").exists() else None
            if checkpoint is not None and checkpoint.server_round >= 2:
                second = folder
        assert victim.poll() is None, "the sweep ended before it could be killed"
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=60)
    (first,) = sweep.glob("0_*")
    first_summary = (first / "summary.json").read_text()
    assert not (second / "summary.json").exists() or json.loads((second / "summary.json").read_text())["status"] != \
        "completed"

    again = _cli(*common, "resume=auto", cwd=tmp_path)
    assert again.wait(timeout=600) == 0, again.stderr.read()[-2000:]
    assert (first / "summary.json").read_text() == first_summary  # finished job skipped, not rerun
    assert sorted(path.name for path in sweep.iterdir() if path.is_dir() and path.name[0].isdigit()) == \
        [first.name, second.name]
    summary = json.loads((second / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["rounds"] == 4
    assert [row["round"] for row in rows_of(second)] == [1, 2, 3, 4]


def diverge_in_round(monkeypatch, server_round: int) -> None:
    """The global model of ``server_round`` counts as non-finite (a divergence after finished rounds)."""
    from fedtna.fl import round_end

    calls = iter(range(1, 100))
    monkeypatch.setattr(round_end, "non_finite_arrays", lambda arrays: ["fc.weight"] if next(calls) == server_round
                        else [])


def test_auto_skips_a_diverged_job_and_rerun_diverged_runs_it_from_round_1(run_config_factory, monkeypatch) -> None:
    from fedtna.errors import RunDivergedError

    config = run_config_factory("num_rounds=3")
    write_config(config)
    with monkeypatch.context() as patch:
        diverge_in_round(patch, 2)
        with pytest.raises(RunDivergedError, match="round 2: the run diverged"):
            run_server(InProcessGrid(config, 4), config)
    run_dir = Path(config.output_dir)
    assert load_checkpoint(run_dir).server_round == 1 and len(rows_of(run_dir)) == 2
    recorded = json.loads((run_dir / "summary.json").read_text())
    assert recorded["failure"] == "diverged" and recorded["completed_rounds"] == 1

    _, skipped = resolve_resume(replace(config, resume="auto"), ["resume=auto"])
    assert skipped == recorded  # not continued: it would diverge again
    with pytest.raises(ConfigError, match=r"diverged \(round 2: .*\); continuing it would diverge again\. "
                                          r"rerun_diverged=true runs it again from round 1"):
        resolve_resume(replace(config, resume=str(run_dir)), [f"resume={run_dir}"])

    again, finished = resolve_resume(replace(config, resume="auto", rerun_diverged=True),
                                     ["resume=auto", "rerun_diverged=true"])
    assert finished is None and again.resume is None and again.rerun_diverged
    assert not (run_dir / "checkpoint.pkl").exists()  # nothing of the diverged attempt is continued
    summary = run_server(InProcessGrid(again, 4), again)
    assert summary["status"] == "completed" and [row["round"] for row in rows_of(run_dir)] == [1, 2, 3]
    whole = run_config_factory("num_rounds=3")
    run_server(InProcessGrid(whole, 4), whole)
    assert rows_of(run_dir) == rows_of(Path(whole.output_dir))


def test_auto_continues_a_job_that_failed_for_another_reason(run_config_factory) -> None:
    from fedtna.errors import RunFailedError

    config = run_config_factory("faults.crash=1.0", "num_rounds=2")
    write_config(config)
    with pytest.raises(RunFailedError, match="0 valid of 4 sampled clients"):
        run_server(InProcessGrid(config, 4), config)
    assert json.loads((Path(config.output_dir) / "summary.json").read_text())["failure"] == "error"
    resumed, finished = resolve_resume(replace(config, resume="auto"), ["resume=auto"])
    assert finished is None and resumed.resume == "auto"
