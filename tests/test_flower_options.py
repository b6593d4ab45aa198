"""Flower FedAvg options: the honoured ones work, the others are refused in one line."""

from __future__ import annotations

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord

from fedtna.errors import ConfigError
from fedtna.fl.strategies.compose import compose
from fedtna.fl.strategies.fedavg import FedAvg

NODES = {0: 100, 1: 101, 2: 102, 3: 103}
SHAPES = {"w": torch.Size([2])}


@pytest.mark.parametrize(("option", "value"), [
    ("min_train_nodes", 3), ("min_evaluate_nodes", 1), ("weighted_by_key", "weight"),
    ("arrayrecord_key", "model"), ("configrecord_key", "plan"),
    ("train_metrics_aggr_fn", lambda records, key: None), ("evaluate_metrics_aggr_fn", lambda records, key: None),
])
def test_unhonoured_options_are_refused_in_one_line(option: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"strategy option {option}=.* not supported by fedtna") as error:
        FedAvg(seed=0, **{option: value})
    assert "\n" not in str(error.value) and "fraction_train" in str(error.value)


def test_flower_defaults_pass_also_through_a_server_optimizer() -> None:
    strategy = compose(FedAvg, "fedadam")(seed=0, fraction_train=0.5, min_available_nodes=4, eta=0.01)
    assert strategy.fraction_train == 0.5


def test_fraction_train_and_fraction_evaluate_size_the_seeded_samples() -> None:
    strategy = FedAvg(seed=0, fraction_train=0.5, fraction_evaluate=0.25, min_available_nodes=4)
    strategy.attach(NODES, SHAPES)
    arrays = ArrayRecord({"w": torch.zeros(2)})
    config = ConfigRecord({})
    assert len(list(strategy.configure_train(1, arrays, config, None))) == 2
    assert len(list(strategy.configure_evaluate(1, arrays, config, None))) == 1


def test_min_available_nodes_is_checked_against_the_partitions() -> None:
    FedAvg(seed=0, min_available_nodes=4).attach(NODES, SHAPES)
    with pytest.raises(ConfigError, match="min_available_nodes=5 but only 4 partitions"):
        FedAvg(seed=0, min_available_nodes=5).attach(NODES, SHAPES)
