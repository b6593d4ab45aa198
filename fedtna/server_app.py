"""The ServerApp: strategy from config, partition discovery, central evaluation, results."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp

from fedtna.clients.local_data import dataset_bundle
from fedtna.device import resolve_device
from fedtna.errors import FedtnaError
from fedtna.masks import derive_seed
from fedtna.models import build_model
from fedtna.results import RunRecorder
from fedtna.strategies import build_strategy
from fedtna.training import evaluate

NODE_WAIT_SECONDS = 600.0


def discover_partitions(grid: Grid, num_clients: int, timeout: float = NODE_WAIT_SECONDS) -> dict[int, int]:
    """Map partition id -> node id with one QUERY round (node ids are random per run)."""
    deadline = time.monotonic() + timeout
    while len(nodes := list(grid.get_node_ids())) < num_clients:
        if time.monotonic() > deadline:
            raise FedtnaError(f"only {len(nodes)} of num_clients={num_clients} nodes connected within {timeout:.0f} s")
        time.sleep(0.2)
    queries = [
        Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=node, message_type=MessageType.QUERY)
        for node in nodes
    ]
    node_of_partition: dict[int, int] = {}
    for reply in grid.send_and_receive(queries, timeout=timeout):
        if reply.has_error():
            raise FedtnaError(f"node {reply.metadata.src_node_id} failed the partition query: {reply.error.reason}")
        partition = int(reply.content["metrics"]["partition-id"])
        if partition in node_of_partition:
            raise FedtnaError(f"two nodes claim partition-id={partition}; give every SuperNode its own")
        node_of_partition[partition] = reply.metadata.src_node_id
    missing = sorted(set(range(num_clients)) - set(node_of_partition))
    if missing:
        raise FedtnaError(f"no node serves partition ids {missing} (num_clients={num_clients})")
    return node_of_partition


def initial_model(run_config: Mapping[str, Any]) -> torch.nn.Module:
    """The global model at round 0, seeded by the run seed."""
    bundle = dataset_bundle(run_config)
    torch.manual_seed(derive_seed(run_config["seed"], "init"))
    return build_model(run_config["model"], bundle.input_shape, bundle.num_classes)


def run_server(grid: Grid, run_config: Mapping[str, Any]) -> dict[str, Any]:
    """The whole federated run on ``grid``; returns the summary."""
    output_dir = Path(run_config["output_dir"])
    model = initial_model(run_config)
    device = resolve_device(str(run_config["device"]))
    evaluation_model = copy.deepcopy(model).to(device)
    bundle = dataset_bundle(run_config)
    node_of_partition = discover_partitions(grid, int(run_config["num_clients"]))
    strategy = build_strategy(run_config)
    strategy.bind_run(run_config, node_of_partition, {n: p.shape for n, p in model.named_parameters()})
    recorder = RunRecorder(output_dir, run_config, show_progress=bool(run_config.get("progress", True)))
    num_rounds = int(run_config["num_rounds"])
    eval_every = int(run_config.get("eval_every", 1))

    def central_evaluation(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round == 0:
            return None
        row: dict[str, Any] = dict(strategy.last_train_metrics)
        row.pop("num-examples", None)
        row.update(strategy.last_evaluate_metrics)
        row.pop("num-examples", None)
        metrics: dict[str, float] = {}
        if server_round % eval_every == 0 or server_round == num_rounds:
            evaluation_model.load_state_dict(arrays.to_torch_state_dict())
            loss, accuracy = evaluate(evaluation_model, bundle.test_x, bundle.test_y,
                                      int(run_config.get("eval_batch_size", 1000)))
            metrics = {"test_accuracy": accuracy, "test_loss": loss}
        recorder.record_round(server_round, {**metrics, **row})
        return MetricRecord(metrics) if metrics else None

    try:
        result = strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(model.state_dict()),
            num_rounds=num_rounds,
            timeout=float(run_config.get("round_timeout", 3600)),
            evaluate_fn=central_evaluation,
        )
        if run_config.get("save_model", True):
            torch.save(result.arrays.to_torch_state_dict(), output_dir / "model.pt")
    finally:
        summary = recorder.close()
    return summary


def make_server_app(run_config: Mapping[str, Any] | None = None, results: dict | None = None) -> ServerApp:
    """A ServerApp bound to ``run_config`` (None: read it from the Flower run config)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        config = run_config if run_config is not None else json.loads(str(context.run_config["cfg-json"]))
        summary = run_server(grid, config)
        if results is not None:
            results["summary"] = summary

    return app


app = make_server_app()
