"""Annealed FedPFN: the anchor ratio schedule, and runs through the real apps."""

from __future__ import annotations

import itertools

import pytest

from fedtna.errors import ConfigError
from fedtna.fl.strategies.annealed import annealed_ratio
from tests.test_server_inprocess import run


@pytest.mark.parametrize("shape", ["linear", "cosine"])
def test_ratio_goes_from_first_to_final_monotonically(shape: str) -> None:
    ratios = [annealed_ratio(0.6, 0.1, server_round, 11, shape) for server_round in range(1, 12)]
    assert ratios[0] == pytest.approx(0.6) and ratios[-1] == pytest.approx(0.1)
    assert all(a > b for a, b in itertools.pairwise(ratios))
    assert ratios[5] == pytest.approx(0.35)  # both shapes pass the midpoint half way


def test_linear_and_cosine_differ_between_the_ends() -> None:
    assert annealed_ratio(0.6, 0.0, 3, 11, "cosine") > annealed_ratio(0.6, 0.0, 3, 11, "linear")


def test_annealed_run_fixes_fewer_weights_each_round(run_config_factory) -> None:
    summary, rows, _ = run(run_config_factory("strategy=fedpfn_anneal", "mask_ratio=0.6", "num_rounds=3"))
    assert summary["status"] == "completed"
    fixed = [row["fixed_fraction"] for row in rows]
    assert fixed[0] == pytest.approx(0.6, abs=0.02) and fixed[1] == pytest.approx(0.3, abs=0.02)
    assert fixed[2] == 0.0  # final_ratio 0: the last round trains every weight


def test_constant_annealing_is_fedpfn_exactly(run_config_factory) -> None:
    _, pfn_rows, pfn_model = run(run_config_factory("strategy=fedpfn", "mask_ratio=0.5"))
    _, flat_rows, flat_model = run(run_config_factory("strategy=fedpfn_anneal", "mask_ratio=0.5",
                                                      "strategy.final_ratio=0.5"))
    strip = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert strip(pfn_rows) == strip(flat_rows)  # the same computation
    assert all((pfn_model[key] == flat_model[key]).all() for key in pfn_model)


@pytest.mark.parametrize("override, key", [("strategy.anneal=step", "strategy.anneal"),
                                           ("strategy.final_ratio=1.0", "strategy.final_ratio")])
def test_bad_annealing_values_are_one_line(run_config_factory, override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        run(run_config_factory("strategy=fedpfn_anneal", override))
