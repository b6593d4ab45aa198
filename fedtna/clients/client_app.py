"""The ClientApp: decode a message, run fedtna.training, reply with arrays and metrics.

The same app runs in simulation (config handed in by ``make_client_app(run_config)``)
and on real SuperNodes (config read from ``context.run_config["cfg-json"]``; the
partition id from ``context.node_config["partition-id"]``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from collections.abc import Mapping
from typing import Any

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from torch import nn

from fedtna.clients.local_data import client_data, dataset_bundle
from fedtna.device import resolve_device
from fedtna.masks import derive_seed, fixed_fraction, masks_checksum
from fedtna.models import build_model
from fedtna.schedules import get_schedule
from fedtna.training import evaluate, local_train, optimizer_settings_from, steps_per_epoch

_MODELS: dict[str, nn.Module] = {}


def run_config_of(context: Context, run_config: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The fedtna config: handed in (simulation) or from the run config (deployment)."""
    if run_config is not None:
        return run_config
    return json.loads(str(context.run_config["cfg-json"]))


def partition_id_of(context: Context) -> int:
    """This node's partition, set by the simulation engine or ``--node-config``."""
    return int(context.node_config["partition-id"])


def client_model(run_config: Mapping[str, Any]) -> nn.Module:
    """The model object for this config, built once per process and reloaded each round."""
    key = json.dumps([run_config["model"], run_config["dataset"], run_config["device"]], sort_keys=True, default=str)
    if key not in _MODELS:
        torch.set_num_threads(int(run_config["simulation"].get("threads_per_client", 1)))
        bundle = dataset_bundle(run_config)
        model = build_model(run_config["model"], bundle.input_shape, bundle.num_classes)
        _MODELS[key] = model.to(resolve_device(str(run_config["device"])))
    return _MODELS[key]


def _load_global(model: nn.Module, message: Message) -> None:
    state = message.content["arrays"].to_torch_state_dict()
    model.load_state_dict(state, strict=True)


def train_on_partition(run_config: Mapping[str, Any], partition_id: int, message: Message) -> RecordDict:
    """Local training of one client for one round; the body of the train handler."""
    round_config = message.content["config"]
    model = client_model(run_config)
    _load_global(model, message)
    inputs, labels = client_data(run_config, partition_id)
    per_epoch = steps_per_epoch(len(labels), int(run_config["batch_size"]))
    phases = get_schedule(str(round_config["schedule"]))(model, round_config, run_config, per_epoch)
    server_round = int(round_config["server-round"])
    settings = optimizer_settings_from(run_config)
    decayed_lr = settings.lr * float(run_config.get("lr_decay", 1.0)) ** (server_round - 1)
    generator = torch.Generator().manual_seed(derive_seed(int(round_config["round-seed"]), "client", partition_id))
    stats = local_train(
        model, inputs, labels, phases,
        optimizer_settings=replace(settings, lr=decayed_lr),
        batch_size=int(run_config["batch_size"]),
        generator=generator,
        proximal_mu=float(round_config.get("proximal-mu", 0.0)),
    )
    metrics: dict[str, float | int] = {
        "num-examples": len(labels),
        "train_loss": stats.mean_loss,
        "partition_id": partition_id,
    }
    masks = next((phase.fixed_masks for phase in phases if phase.fixed_masks is not None), None)
    if masks is not None:
        metrics["fixed_fraction"] = fixed_fraction(masks, model)
        metrics["anchor_drift"] = stats.anchor_drift
        metrics["mask_checksum"] = masks_checksum(masks)
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    return RecordDict({"arrays": ArrayRecord(state), "metrics": MetricRecord(metrics)})


def evaluate_on_partition(run_config: Mapping[str, Any], partition_id: int, message: Message) -> RecordDict:
    """Federated evaluation of the global model on this client's partition."""
    model = client_model(run_config)
    _load_global(model, message)
    inputs, labels = client_data(run_config, partition_id)
    loss, accuracy = evaluate(model, inputs, labels, int(run_config.get("eval_batch_size", 1000)))
    metrics = {"num-examples": len(labels), "client_loss": loss, "client_accuracy": accuracy,
               "partition_id": partition_id}
    return RecordDict({"metrics": MetricRecord(metrics)})


def make_client_app(run_config: Mapping[str, Any] | None = None) -> ClientApp:
    """A ClientApp bound to ``run_config`` (None: read it from the Flower run config)."""
    app = ClientApp()

    @app.query()
    def query(message: Message, context: Context) -> Message:
        metrics = MetricRecord({"partition-id": partition_id_of(context)})
        return Message(RecordDict({"metrics": metrics}), reply_to=message)

    @app.train()
    def train(message: Message, context: Context) -> Message:
        config = run_config_of(context, run_config)
        return Message(train_on_partition(config, partition_id_of(context), message), reply_to=message)

    @app.evaluate()
    def evaluate_handler(message: Message, context: Context) -> Message:
        config = run_config_of(context, run_config)
        return Message(evaluate_on_partition(config, partition_id_of(context), message), reply_to=message)

    return app


app = make_client_app()
