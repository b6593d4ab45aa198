"""A launcher or sweeper of the ``sweeps`` extra, used without it: one line naming the extra, exit 2."""

from __future__ import annotations

import sys

import pytest

from fedtna.config import plugins
from fedtna.config.entry import CONF_DIR, hydra_entry
from fedtna.config.plugins import JOBLIB, OPTUNA, SUBMITIT, missing_sweeps_plugin

SWEEPS = 'needs the sweeps extra: pip install "fedtna[sweeps]"'


@pytest.fixture
def not_installed(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Plugin modules added to the returned set count as not installed."""
    missing: set[str] = set()
    monkeypatch.setattr(plugins, "importable", lambda module: module not in missing)
    return missing


@pytest.mark.parametrize(("overrides", "module", "message"), [
    (["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], JOBLIB, f"hydra/launcher=joblib {SWEEPS}"),
    (["+hydra/launcher=submitit_local"], SUBMITIT, f"hydra/launcher=submitit_local {SWEEPS}"),
    (["hydra/launcher=slurm", "seed=0,1"], SUBMITIT, f"hydra/launcher=slurm {SWEEPS}"),
    (["hydra/sweeper/sampler=tpe"], OPTUNA, f"hydra/sweeper/sampler=tpe {SWEEPS}"),
    (["+experiment=optuna_search"], OPTUNA, f"experiment=optuna_search (hydra/sweeper=optuna) {SWEEPS}"),
])
def test_a_missing_plugin_is_named_with_the_extra(not_installed: set[str], monkeypatch: pytest.MonkeyPatch,
                                                   overrides: list[str], module: str, message: str) -> None:
    monkeypatch.setattr(sys, "version_info", (3, 11, 0))
    assert missing_sweeps_plugin(overrides, CONF_DIR) is None
    not_installed.add(module)
    assert missing_sweeps_plugin(overrides, CONF_DIR) == message


def test_optuna_on_a_newer_python_says_why(not_installed: set[str], monkeypatch: pytest.MonkeyPatch) -> None:
    not_installed.add(OPTUNA)
    monkeypatch.setattr(sys, "version_info", (3, 12, 0))
    message = missing_sweeps_plugin(["hydra/sweeper=optuna"], CONF_DIR)
    assert message is not None and "Python 3.11 only" in message and 'pip install "fedtna[sweeps]"' in message


def test_other_overrides_need_no_plugin(not_installed: set[str]) -> None:
    not_installed.update({JOBLIB, SUBMITIT, OPTUNA})
    overrides = ["hydra/launcher=basic", "hydra/sweeper=basic", "+experiment=paper_cifar10", "experiment=nope",
                 "strategy=fedpnu", "hydra.run.dir=/tmp/x", "--multirun", "seed=0,1"]
    assert missing_sweeps_plugin(overrides, CONF_DIR) is None


def test_the_entry_stops_before_hydra_with_one_line(not_installed: set[str], monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    not_installed.add(JOBLIB)
    monkeypatch.setattr(sys, "argv", ["fedtna-run", "-m", "hydra/launcher=joblib", "strategy=fedavg,fedpnu"])
    main = hydra_entry("config", lambda cfg: pytest.fail("Hydra composed a config"), lambda config: None)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f'error: hydra/launcher=joblib {SWEEPS}\n'
