"""The label plot is drawn in a thread while round 1 runs: the run waits for it and reports its error."""

from __future__ import annotations

import threading

import pytest

from fedtna.fl.experiment import in_background


def test_the_work_runs_beside_the_body_and_is_awaited() -> None:
    started, release, done = threading.Event(), threading.Event(), []

    def work(value: int) -> None:
        started.set()
        release.wait(5)
        done.append(value)

    with in_background(work, 7):
        assert started.wait(5)  # the body runs while the work is under way
        assert done == []
        release.set()
    assert done == [7]  # finished before the block is left


def test_an_error_of_the_work_is_raised_after_the_body() -> None:
    def work() -> None:
        raise OSError("disk full")

    body_ran = []
    with pytest.raises(OSError, match="disk full"), in_background(work):
        body_ran.append(True)
    assert body_ran == [True]


def test_the_bodys_error_wins_over_the_works() -> None:
    def work() -> None:
        raise OSError("disk full")

    with pytest.raises(RuntimeError, match="diverged"), in_background(work):
        raise RuntimeError("diverged")


def test_a_label_plot_that_cannot_be_written_is_a_warning_not_a_failed_run(tmp_path, caplog) -> None:
    from fedtna.fl.experiment import write_label_plot_or_warn
    from fedtna.fl.local_data import all_partitions
    from tests.conftest import FAST, compose_run_config

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    config = compose_run_config(blocked, *FAST)
    with caplog.at_level("WARNING"):
        write_label_plot_or_warn(config, all_partitions(config))
    assert "label_distribution.png was not written" in caplog.text
