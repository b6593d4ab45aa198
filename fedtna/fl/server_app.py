"""The ServerApp: strategy from config, partition discovery, central evaluation, results."""

from __future__ import annotations

import copy
import time
from logging import INFO
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp

from fedtna.config import RunConfig
from fedtna.device import resolve_device
from fedtna.errors import FedtnaError, RunDivergedError
from fedtna.fl.checkpoint import load_checkpoint, restore_server_state
from fedtna.fl.client_app import RUN_CONFIG_KEY, run_config_from_flower
from fedtna.fl.client_report import PARTITION_ID_KEY
from fedtna.fl.experiment import initial_model, prepare, write_config
from fedtna.fl.failures import failure_fields
from fedtna.fl.local_data import dataset_bundle, validation_set
from fedtna.fl.records import scalars
from fedtna.fl.results import RunRecorder
from fedtna.fl.round_end import central_evaluation, check_divergence, checkpoint_round, client_row
from fedtna.fl.rounds import RoundResult, run_rounds
from fedtna.fl.strategies import build_strategy
from fedtna.fl.strategies.base import ClientFailureError, as_array_record

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
        partition = int(scalars(reply.content, "metrics")[PARTITION_ID_KEY])
        if partition in node_of_partition:
            raise FedtnaError(f"two nodes claim partition-id={partition}; give every SuperNode its own")
        node_of_partition[partition] = reply.metadata.src_node_id
    missing = sorted(set(range(num_clients)) - set(node_of_partition))
    if missing:
        raise FedtnaError(f"no node serves partition ids {missing} (num_clients={num_clients})")
    return node_of_partition


def assign_partitions(grid: Grid, num_clients: int, timeout: float = NODE_WAIT_SECONDS,
                      min_nodes: int | None = None) -> dict[int, int]:
    """Simulation: give partition p to node ``p mod nodes`` (node ids sorted); messages name the partition,
    so no query round.

    Which virtual node serves a partition changes nothing (simulated nodes hold no data of their
    own), and it saves one message per client: at 10,000 clients the query round took minutes.
    ``fedtna.run`` starts one node per partition and waits for all of them; ``flwr run``'s local
    simulation has ``num-supernodes`` nodes (Flower's default: 2), registered at once, which then
    serve several partitions each (``min_nodes=1``).
    """
    needed = num_clients if min_nodes is None else min_nodes
    deadline = time.monotonic() + timeout
    while len(nodes := sorted(grid.get_node_ids())) < needed:
        if time.monotonic() > deadline:
            raise FedtnaError(f"only {len(nodes)} of {needed} simulated nodes registered within {timeout:.0f} s")
        time.sleep(0.05)
    nodes = nodes[:num_clients]
    return {partition: nodes[partition % len(nodes)] for partition in range(num_clients)}


def run_server(grid: Grid, config: RunConfig, simulated_nodes: bool = False,
               shared_nodes: bool = False) -> dict[str, Any]:
    """The whole federated run on ``grid`` (continued from its checkpoint when resuming); returns the summary.

    ``simulated_nodes``: the nodes hold no data of their own, so partitions are assigned, not discovered.
    ``shared_nodes``: the simulation may have fewer nodes than partitions (``flwr run``); they share them.
    """
    output_dir = Path(config.output_dir)
    model = initial_model(config)
    evaluation_model = copy.deepcopy(model).to(resolve_device(config.device))
    bundle = dataset_bundle(config)
    validation = validation_set(config)
    strategy = build_strategy(config)
    if simulated_nodes:
        node_of_partition = assign_partitions(grid, config.num_clients, min_nodes=1 if shared_nodes else None)
    else:
        node_of_partition = discover_partitions(grid, config.num_clients)
    strategy.attach(node_of_partition,
                    {name: parameter.shape for name, parameter in model.named_parameters()})
    checkpoint = load_checkpoint(output_dir) if config.resume is not None else None
    arrays = ArrayRecord(model.state_dict())
    if checkpoint is not None:
        arrays = as_array_record(checkpoint.arrays)
        restore_server_state(strategy, checkpoint.server_state)
    recorder = RunRecorder(output_dir, config, checkpoint.rows if checkpoint is not None else None)
    first_round = checkpoint.server_round + 1 if checkpoint is not None else 1
    completed_rounds = first_round - 1

    def end_of_round(result: RoundResult) -> None:
        nonlocal completed_rounds
        metrics, diverged = central_evaluation(result, config, evaluation_model, bundle, validation)
        recorder.record_round(result.server_round, {**metrics, **client_row(result)})
        check_divergence(result.server_round, diverged, config)
        completed_rounds = result.server_round
        checkpoint_round(result, config, recorder, strategy)

    status = "failed"
    failure: dict[str, Any] = {}
    try:
        try:
            arrays = run_rounds(strategy, grid, arrays, first_round, config.num_rounds, config.round_timeout,
                                end_of_round)
        except ClientFailureError as error:
            if not error.non_finite_updates:
                raise
            raise RunDivergedError(f"{error}; {error.non_finite_updates} client update(s) were not finite: the run "
                                   f"diverged, the client learning rate lr={config.lr} is likely too high") from None
        if config.save_model:
            torch.save(arrays.to_torch_state_dict(), output_dir / "model.pt")
        status = "completed"
    except BaseException as error:
        failure = failure_fields(error, completed_rounds)
        raise
    finally:
        summary = recorder.close({"status": status, **failure})
    return summary


def config_from_flower_run(grid: Grid, context: Context) -> RunConfig:
    """The config of a ``flwr run``: ``cfg-json`` (fedtna-deploy checked it; config.json is written
    here when the run folder has none, e.g. a run submitted by hand, so ``resume=`` finds it), or
    composed from the ``overrides`` run-config key, then checked and written here as ``fedtna.run`` does."""
    config = run_config_from_flower(context.run_config)
    if str(context.run_config.get(RUN_CONFIG_KEY, "")).strip():
        if not (Path(config.output_dir) / "config.json").is_file():
            write_config(config)
        return config
    log(INFO, "fedtna: %s, %s clients, %s rounds; results in %s", config.strategy_spec.name,
        config.num_clients, config.num_rounds, config.output_dir)
    write_config(config)
    prepare(config)
    return config


def is_flower_simulation(grid: Grid) -> bool:
    """Whether ``grid`` is Flower's in-memory grid of ``flwr run``'s simulation (imported only then: it
    costs seconds)."""
    from flwr.superlink.grid.inmemory_grid import InMemoryGrid

    return isinstance(grid, InMemoryGrid)


def make_server_app(config: RunConfig | None = None, results: dict | None = None,
                    simulated_nodes: bool = False) -> ServerApp:
    """A ServerApp bound to ``config`` (None: read it from the Flower run config, see ``config_from_flower_run``).

    Under ``flwr run``'s simulation (an in-memory grid) the nodes are simulated, so partitions are assigned.
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_config = config if config is not None else config_from_flower_run(grid, context)
        # fedtna's own engines say so (simulated_nodes); only a ServerApp of `flwr run` must look at the grid
        flower_simulation = (config is None or not simulated_nodes) and is_flower_simulation(grid)
        summary = run_server(grid, run_config, simulated_nodes or flower_simulation,
                             shared_nodes=config is None and flower_simulation)
        if results is not None:
            results["summary"] = summary

    return app


app = make_server_app()
