"""Strategies end to end through the real ServerApp and ClientApp code, without Ray."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from fedtna.config import RunConfig
from fedtna.fl.experiment import initial_model
from fedtna.fl.server_app import run_server
from fedtna.fl.strategies.base import MaskMismatchError
from fedtna.masks import MaskSpec, draw_fixed_masks
from tests.conftest import InProcessGrid


def run(run_config: RunConfig) -> tuple[dict, list[dict], dict]:
    grid = InProcessGrid(run_config, run_config.num_clients)
    summary = run_server(grid, run_config)
    output = Path(run_config.output_dir)
    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    model = torch.load(output / "model.pt")
    return summary, rows, model


def test_fedavg_learns_and_writes_results(run_config_factory) -> None:
    summary, rows, _ = run(run_config_factory("num_rounds=3"))
    assert [row["round"] for row in rows] == [1, 2, 3]
    assert {"test_accuracy", "test_loss", "train_loss", "seconds", "clients"} <= set(rows[0])
    assert rows[-1]["test_accuracy"] > 0.5
    assert summary["final_test_accuracy"] == rows[-1]["test_accuracy"]
    output = Path(run_config_factory().output_dir).parent
    assert (output / "run0" / "summary.json").exists() and (output / "run0" / "metrics.csv").exists()


def test_fedprox_with_zero_mu_equals_fedavg(run_config_factory) -> None:
    _, fedavg_rows, fedavg_model = run(run_config_factory("strategy=fedavg"))
    _, prox_rows, prox_model = run(run_config_factory("strategy=fedprox", "strategy.proximal_mu=0.0"))
    _, prox_on_rows, _ = run(run_config_factory("strategy=fedprox", "strategy.proximal_mu=1.0"))
    strip = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert strip(fedavg_rows) == strip(prox_rows)
    assert all(torch.equal(fedavg_model[k], prox_model[k]) for k in fedavg_model)
    assert strip(prox_on_rows) != strip(fedavg_rows)


def test_zero_mask_ratio_reproduces_fedavg(run_config_factory) -> None:
    _, fedavg_rows, fedavg_model = run(run_config_factory("strategy=fedavg"))
    _, pfn_rows, pfn_model = run(run_config_factory("strategy=fedpfn", "mask_ratio=0.0"))
    assert [r["test_accuracy"] for r in fedavg_rows] == [r["test_accuracy"] for r in pfn_rows]
    assert [r["test_loss"] for r in fedavg_rows] == [r["test_loss"] for r in pfn_rows]
    assert all(torch.equal(fedavg_model[k], pfn_model[k]) for k in fedavg_model)


def test_fedpfn_self_checks_and_exact_anchors_after_aggregation(run_config_factory) -> None:
    run_config = run_config_factory("strategy=fedpfn", "mask_ratio=0.6", "num_rounds=1", "model=cnn")
    grid = InProcessGrid(run_config, 4)
    start = initial_model(run_config).state_dict()
    run_server(grid, run_config)
    output = Path(run_config.output_dir)
    row = json.loads((output / "metrics.jsonl").read_text().splitlines()[0])
    assert abs(row["fixed_fraction"] - 0.6) < 0.01
    assert row["anchor_drift"] == 0.0
    final = torch.load(output / "model.pt")
    seed = int(grid.delivered[-1].content["config"]["mask-seed"])
    masks = draw_fixed_masks(initial_model(run_config).named_parameters(), seed, MaskSpec(0.6, "weight"))
    for name, mask in masks.items():
        assert start[name][mask].numpy().tobytes() == final[name][mask].numpy().tobytes()
        assert not torch.equal(start[name][~mask], final[name][~mask])


def test_round_seed_only_travels_and_sampling_is_seeded(run_config_factory) -> None:
    configs = []
    for _ in range(2):
        run_config = run_config_factory("strategy=fedpnu", "fraction_train=0.5", "num_clients=6")
        grid = InProcessGrid(run_config, 6)
        run_server(grid, run_config)
        train = [m for m in grid.delivered if m.metadata.message_type == "train"]
        configs.append([(m.metadata.dst_node_id, dict(m.content["config"])) for m in train])
        assert all(set(m.content.keys()) == {"arrays", "config"} for m in train)
    assert configs[0] == configs[1]
    assert len(configs[0]) == 2 * 3
    first_round = {node for node, config in configs[0] if config["server-round"] == 1}
    assert len(first_round) == 3


def test_checksum_mismatch_fails_the_run(run_config_factory, monkeypatch) -> None:
    import fedtna.fl.client_app as client_app

    original = client_app.mask_report
    calls = iter(range(100))

    def tampered(*args):
        report = original(*args)
        return replace(report, mask_checksum=report.mask_checksum + (1 if next(calls) == 2 else 0))

    monkeypatch.setattr(client_app, "mask_report", tampered)
    with pytest.raises(MaskMismatchError, match="masks disagree"):
        run_server(InProcessGrid(run_config := run_config_factory("strategy=fedpfn"), 4), run_config)


@pytest.mark.parametrize("server", ["fedavgm", "fedadam"])
def test_masked_strategies_compose_with_server_optimizers(run_config_factory, server: str) -> None:
    option = ("+strategy.server_options.server_momentum=0.5" if server == "fedavgm"
              else "+strategy.server_options.eta=0.01")
    summary, rows, _ = run(run_config_factory("strategy=fedpnu", f"strategy.server={server}", option, "num_rounds=3"))
    assert rows[-1]["anchor_drift"] == 0.0
    assert summary["final_test_accuracy"] > 0.3


@pytest.mark.parametrize(("per_round", "distinct"), [(True, 2), (False, 1)])
def test_mask_seed_per_round_or_fixed_for_the_run(run_config_factory, per_round: bool, distinct: int) -> None:
    run_config = run_config_factory("strategy=fedpfn", f"mask.per_round={str(per_round).lower()}", "model=mlp")
    grid = InProcessGrid(run_config, 4)
    run_server(grid, run_config)
    seeds = {int(m.content["config"]["mask-seed"]) for m in grid.delivered if m.metadata.message_type == "train"}
    assert len(seeds) == distinct


def test_neuron_granularity_and_scope_reach_the_clients(run_config_factory) -> None:
    run_config = run_config_factory("strategy=fedpfn", "mask.granularity=neuron", "mask.scope=[fc1]", "model=mlp",
                                    "num_rounds=1")
    _, rows, _ = run(run_config)
    fc1_share = 784 * 200 / (784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10)
    assert 0.0 < rows[0]["fixed_fraction"] < fc1_share
    assert rows[0]["anchor_drift"] == 0.0


def test_a_new_schedule_is_one_module_and_one_yaml_key(run_config_factory) -> None:
    from fedtna.fl.round_plan import plan_masks
    from fedtna.fl.schedules import register, unregister
    from fedtna.training import Phase

    @register("pfn_then_full")
    def pfn_then_full(model, plan, work):
        masks = plan_masks(plan, model.named_parameters())
        return [Phase(masks, work.steps_per_epoch), Phase(None, work.steps_per_epoch)]

    try:
        run_config = run_config_factory("strategy=fedpfn", "+strategy.schedule=pfn_then_full", "model=mlp",
                                        "num_rounds=1")
        grid = InProcessGrid(run_config, 4)
        run_server(grid, run_config)
        assert {m.content["config"]["schedule"] for m in grid.delivered if m.metadata.message_type == "train"} == {
            "pfn_then_full"}
    finally:
        unregister("pfn_then_full")


def test_unknown_schedule_is_rejected_before_running(run_config_factory) -> None:
    from fedtna.errors import ConfigError
    from fedtna.fl.strategies import build_strategy

    with pytest.raises(ConfigError, match="schedule='nope' is unknown; known schedules: \\['full', 'pfn', 'pnu'\\]"):
        build_strategy(run_config_factory("strategy=fedpfn", "+strategy.schedule=nope"))


def test_client_app_rebuilds_the_typed_config_from_cfg_json(run_config_factory) -> None:
    """Deployment path: the ClientApp gets only ``cfg-json`` and must train exactly as in simulation."""
    from fedtna.config import to_plain

    config = run_config_factory("strategy=fedpfn", "num_rounds=1")
    _, direct_rows, direct_model = run(config)
    config = run_config_factory("strategy=fedpfn", "num_rounds=1")
    grid = InProcessGrid(None, 4, run_config={"cfg-json": json.dumps(to_plain(config))})
    run_server(grid, config)
    rows = [json.loads(line) for line in (Path(config.output_dir) / "metrics.jsonl").read_text().splitlines()]
    strip = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert strip(rows) == strip(direct_rows)
    model = torch.load(Path(config.output_dir) / "model.pt")
    assert all(torch.equal(model[k], direct_model[k]) for k in model)


def test_client_app_refuses_a_hostile_cfg_json(run_config_factory) -> None:
    """A config arriving over the network cannot make a client import and call foreign code."""
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict

    from fedtna.config import to_plain
    from fedtna.errors import ConfigError
    from fedtna.fl.client_app import make_client_app

    config = run_config_factory()
    hostile = to_plain(config)
    hostile["model"] = {"name": "x", "_target_": "os.system", "command": "touch /tmp/fedtna-pwned"}
    app = make_client_app(None)
    context = Context(run_id=1, node_id=5, node_config={"partition-id": 0}, state=RecordDict(),
                      run_config={"cfg-json": json.dumps(hostile)})
    plan = {"server-round": 1, "round-seed": 1, "schedule": "full", "proximal-mu": 0.0}
    message = Message(RecordDict({"arrays": ArrayRecord({}), "config": ConfigRecord(plan)}), dst_node_id=5,
                      message_type=MessageType.TRAIN)
    with pytest.raises(ConfigError, match=r"model._target_='os.system' is not allowed"):
        app(message, context)  # Flower's runtime turns this into an error reply
    assert not Path("/tmp/fedtna-pwned").exists()
