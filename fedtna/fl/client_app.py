"""The ClientApp: decode a message, run fedtna.training, reply with arrays and metrics.

The same app runs in simulation (config handed in by ``make_client_app(config)``) and on
real SuperNodes (config parsed from ``context.run_config["cfg-json"]``, or composed from the
Hydra overrides in ``context.run_config["overrides"]`` when ``cfg-json`` is empty, as under
``flwr run .``; the partition id from ``context.node_config["partition-id"]``). Replies carry a
:class:`~fedtna.fl.client_report.ClientReport`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from torch import nn

from fedtna.augment import BatchTransform, batch_transform
from fedtna.config import RunConfig, parse_run_config
from fedtna.config.entry import compose_overrides_config
from fedtna.device import resolve_device
from fedtna.fl.client_report import PARTITION_ID_KEY, ClientReport
from fedtna.fl.faults import Fault, InjectedCrash, fault_for
from fedtna.fl.local_data import client_data, dataset_bundle
from fedtna.fl.phase_metrics import mask_report
from fedtna.fl.records import array_record, scalars
from fedtna.fl.round_plan import RoundPlan
from fedtna.fl.schedules import LocalWork, get_schedule
from fedtna.masks import derive_seed
from fedtna.models import build_model
from fedtna.training import OptimizerSettings, Phase, TrainStats, evaluate, local_train, steps_per_epoch

RUN_CONFIG_KEY = "cfg-json"
OVERRIDES_KEY = "overrides"
_MODELS: dict[str, nn.Module] = {}
_COMPOSED: dict[str, RunConfig] = {}


def run_config_from_flower(run_config: Mapping[str, Any]) -> RunConfig:
    """The fedtna config a Flower run config carries: the JSON in ``cfg-json`` (fedtna-deploy) or,
    when that is empty, the Hydra ``overrides`` string composed here (``flwr run .``)."""
    text = str(run_config.get(RUN_CONFIG_KEY, "")).strip()
    if text:
        return parse_run_config(json.loads(text))
    return compose_overrides_config(str(run_config.get(OVERRIDES_KEY, "")))


def config_of(context: Context, config: RunConfig | None) -> RunConfig:
    """The fedtna config: handed in (simulation) or read from the Flower run config (``flwr run``)."""
    if config is not None:
        return config
    key = json.dumps(dict(context.run_config), sort_keys=True, default=str)
    if key not in _COMPOSED:  # a simulation actor serves many messages of a run: compose once
        _COMPOSED[key] = run_config_from_flower(context.run_config)
    return _COMPOSED[key]


def partition_id_of(context: Context, message: Message | None = None) -> int:
    """The partition to use: named by the server's message, else this node's own (``--node-config``).

    A real SuperNode holds its data and the server names the partition it discovered there; a
    simulated node holds nothing, so the server may give it any partition.
    """
    if message is not None and message.has_content() and PARTITION_ID_KEY in message.content.get("config", {}):
        return int(scalars(message.content, "config")[PARTITION_ID_KEY])
    return int(context.node_config[PARTITION_ID_KEY])


def client_model(config: RunConfig) -> nn.Module:
    """The model object for this config, built once per process and reloaded each round."""
    key = json.dumps([config.model, config.dataset, config.device], sort_keys=True, default=str)
    if key not in _MODELS:
        torch.set_num_threads(config.simulation.threads_per_client)
        bundle = dataset_bundle(config)
        model = build_model(config.model_spec, bundle.input_shape, bundle.num_classes)
        _MODELS[key] = model.to(resolve_device(config.device))
    return _MODELS[key]


def load_global(model: nn.Module, message: Message) -> None:
    """Load the global arrays a message carries into the model."""
    model.load_state_dict(array_record(message.content, "arrays").to_torch_state_dict(), strict=True)


@dataclass(frozen=True)
class TrainJob:
    """One client's local training of one round, as its train message asks for it (nothing trained yet)."""

    partition_id: int
    plan: RoundPlan
    fault: Fault
    inputs: torch.Tensor
    labels: torch.Tensor
    phases: list[Phase]
    optimizer_settings: OptimizerSettings
    generator: torch.Generator
    batch_transform: BatchTransform | None


def round_fault(config: RunConfig, partition_id: int, plan: RoundPlan) -> Fault:
    """This client's injected fault of the round; a crash raises here, before any work."""
    fault = fault_for(plan.round_seed, partition_id, config.faults)
    if fault is Fault.CRASH:
        raise InjectedCrash(f"injected crash (faults.crash) of partition {partition_id} in round {plan.server_round}")
    if fault is Fault.DELAY:
        time.sleep(config.faults.delay_seconds)  # a straggler (faults.delay): late, then it trains as usual
    return fault


def prepare_train_job(config: RunConfig, partition_id: int, plan: RoundPlan, fault: Fault,
                      model: nn.Module) -> TrainJob:
    """The client's data, phases (from the schedule), decayed learning rate and seeded generator."""
    inputs, labels = client_data(config, partition_id)
    work = LocalWork(config.local_epochs, steps_per_epoch(len(labels), config.batch_size))
    phases = get_schedule(plan.schedule)(model, plan, work)
    settings = config.optimizer_settings
    decayed_lr = settings.lr * config.lr_decay ** (plan.server_round - 1)
    generator = torch.Generator().manual_seed(derive_seed(plan.round_seed, "client", partition_id))
    return TrainJob(partition_id=partition_id, plan=plan, fault=fault, inputs=inputs, labels=labels, phases=phases,
                    optimizer_settings=replace(settings, lr=decayed_lr), generator=generator,
                    batch_transform=batch_transform(config.augmentation))


def train_reply(job: TrainJob, state: Mapping[str, torch.Tensor], stats: TrainStats, model: nn.Module) -> RecordDict:
    """The train reply: the trained ``state`` and the metrics (``model`` only counts the parameters)."""
    report = ClientReport(num_examples=len(job.labels), partition_id=job.partition_id, train_loss=stats.mean_loss,
                          mask=mask_report(job.phases, model, stats.anchor_drift))
    arrays = {name: tensor.detach().cpu() for name, tensor in state.items()}
    if job.fault is Fault.NAN:
        arrays = {name: torch.full_like(tensor, float("nan")) if tensor.is_floating_point() else tensor
                  for name, tensor in arrays.items()}
    return RecordDict({"arrays": ArrayRecord(arrays), "metrics": report.to_record()})


def train_on_partition(config: RunConfig, partition_id: int, message: Message) -> RecordDict:
    """Local training of one client for one round; the body of the train handler."""
    plan = RoundPlan.from_record(message.content["config"])
    fault = round_fault(config, partition_id, plan)
    model = client_model(config)
    load_global(model, message)
    job = prepare_train_job(config, partition_id, plan, fault, model)
    stats = local_train(model, job.inputs, job.labels, job.phases, optimizer_settings=job.optimizer_settings,
                        batch_size=config.batch_size, generator=job.generator, proximal_mu=plan.proximal_mu,
                        batch_transform=job.batch_transform)
    return train_reply(job, model.state_dict(), stats, model)


def evaluate_on_partition(config: RunConfig, partition_id: int, message: Message) -> RecordDict:
    """Federated evaluation of the global model on this client's partition."""
    model = client_model(config)
    load_global(model, message)
    inputs, labels = client_data(config, partition_id)
    loss, accuracy = evaluate(model, inputs, labels, config.eval_batch_size)
    report = ClientReport(num_examples=len(labels), partition_id=partition_id, client_loss=loss,
                          client_accuracy=accuracy)
    return RecordDict({"metrics": report.to_record()})


def make_client_app(config: RunConfig | None = None) -> ClientApp:
    """A ClientApp bound to ``config`` (None: parse it from the Flower run config)."""
    app = ClientApp()

    @app.query()
    def query(message: Message, context: Context) -> Message:
        metrics = MetricRecord({PARTITION_ID_KEY: partition_id_of(context)})  # discovery's reply: the config key
        return Message(RecordDict({"metrics": metrics}), reply_to=message)

    @app.train()
    def train(message: Message, context: Context) -> Message:
        content = train_on_partition(config_of(context, config), partition_id_of(context, message), message)
        return Message(content, reply_to=message)

    @app.evaluate()
    def evaluate_handler(message: Message, context: Context) -> Message:
        content = evaluate_on_partition(config_of(context, config), partition_id_of(context, message), message)
        return Message(content, reply_to=message)

    return app


app = make_client_app()
