"""A failed run's summary.json, and a multirun job that survives its own failure (``fedtna/fl/failures.py``).
The end-to-end sweeps (basic and joblib launchers, exit codes, resume) are in test_sweeps.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedtna.errors import ConfigError, RunDivergedError
from fedtna.fl.failures import (
    failed_jobs,
    failure_fields,
    read_summary,
    record_failure,
    run_sweep_job,
)
from fedtna.fl.strategies.base import ClientFailureError


def test_failure_fields_name_the_kind_and_a_one_line_reason() -> None:
    assert failure_fields(RunDivergedError("round 2: the run\n  diverged"), 1) == {
        "failure": "diverged", "reason": "round 2: the run diverged", "completed_rounds": 1}
    assert failure_fields(ClientFailureError("round 1 (train): 0 valid of 3"), 0)["failure"] == "error"
    assert failure_fields(RuntimeError("boom"), 0)["reason"] == "RuntimeError: boom"
    assert failure_fields(KeyboardInterrupt(), 3) == {"failure": "interrupted", "reason": "KeyboardInterrupt",
                                                      "completed_rounds": 3}


def test_a_diverging_job_is_recorded_and_the_sweep_goes_on(run_config_factory, capsys: pytest.CaptureFixture) -> None:
    config = run_config_factory("lr=50", "num_rounds=3")
    summary = run_sweep_job(config)  # returns: no exception reaches Hydra's launcher
    assert summary["status"] == "failed" and summary["failure"] == "diverged"
    assert "lr=50.0 is likely too high" in summary["reason"] and summary["completed_rounds"] == 0
    assert read_summary(config.output_dir) == summary
    assert failed_jobs(Path(config.output_dir).parent) == [Path(config.output_dir)]
    assert "job failed (diverged): round 1 (train)" in capsys.readouterr().err


def test_bad_input_still_stops_the_sweep(run_config_factory) -> None:
    config = run_config_factory("strategy=fedpfn", "mask_ratio=1.0")
    with pytest.raises(ConfigError, match=r"mask_ratio=1.0 is outside the allowed range"):
        run_sweep_job(config)
    assert read_summary(config.output_dir) is None


def test_a_crash_before_the_rounds_is_recorded_with_its_traceback(run_config_factory, monkeypatch,
                                                                  capsys: pytest.CaptureFixture) -> None:
    def broken(config):
        raise RuntimeError("the engine broke")

    monkeypatch.setattr("fedtna.fl.engines.simulate", broken)
    config = run_config_factory()
    summary = run_sweep_job(config)
    assert summary == {"status": "failed", "failure": "error", "reason": "RuntimeError: the engine broke",
                       "completed_rounds": 0}
    assert json.loads((Path(config.output_dir) / "summary.json").read_text()) == summary
    assert "Traceback" in capsys.readouterr().err  # a bug stays visible


def test_record_failure_keeps_what_run_server_wrote_for_the_same_error(tmp_path: Path) -> None:
    written = {"status": "failed", "failure": "diverged", "reason": "round 2: diverged", "completed_rounds": 1,
               "rounds": 2}
    (tmp_path / "summary.json").write_text(json.dumps(written))
    assert record_failure(tmp_path, RunDivergedError("round 2: diverged")) == written
    (tmp_path / "metrics.jsonl").write_text('{"round": 1}\n{"round": 2}\n')
    other = record_failure(tmp_path, RuntimeError("later"))  # another error: the summary names it
    assert other["reason"] == "RuntimeError: later" and other["completed_rounds"] == 2
