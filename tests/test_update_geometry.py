"""The client-drift metrics of a round, on made-up updates with a known answer, and in a run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedtna.fl.update_geometry import update_geometry
from tests.test_server_inprocess import run


def test_known_geometry() -> None:
    sent = {"w": np.zeros(2), "steps": np.array(5)}
    clients = [{"w": np.array([1.0, 0.0]), "steps": np.array(6)}, {"w": np.array([-1.0, 0.0]), "steps": np.array(6)}]
    new = {"w": np.array([3.0, 4.0]), "steps": np.array(6)}
    geometry = update_geometry(sent, clients, [1.0, 1.0], new)
    assert geometry.update_norm == 1.0          # each client moved by 1
    assert geometry.update_spread == 1.0        # each is 1 away from their mean (0, 0)
    assert geometry.update_agreement == 0.0     # they cancel
    assert geometry.global_norm == 5.0          # integer buffers are left out


def test_agreeing_clients_and_weights() -> None:
    sent = {"w": np.zeros(1)}
    clients = [{"w": np.array([2.0])}, {"w": np.array([4.0])}]
    geometry = update_geometry(sent, clients, [3.0, 1.0], {"w": np.array([2.5])})
    assert geometry.update_norm == pytest.approx(0.75 * 2 + 0.25 * 4)
    mean = 2.5
    assert geometry.update_spread == pytest.approx(math.sqrt(0.75 * (2 - mean) ** 2 + 0.25 * (4 - mean) ** 2))
    assert geometry.update_agreement == pytest.approx(mean / 2.5)  # all moved the same way: 1


def test_drift_metrics_are_in_every_round(run_config_factory) -> None:
    _, rows, model = run(run_config_factory("strategy=fedpfn", "num_rounds=2"))
    for row in rows:
        assert row["update_norm"] > 0 and row["update_spread"] > 0 and 0 < row["update_agreement"] <= 1
    norm = math.sqrt(sum(float((tensor.double() ** 2).sum()) for tensor in model.values()
                         if tensor.is_floating_point()))
    assert rows[-1]["global_norm"] == pytest.approx(norm, rel=1e-12)
