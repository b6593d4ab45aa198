"""The local engine: the ServerApp and ClientApp of a run on this machine, without Ray.

A ``LocalGrid`` hands every Message of the ServerApp to the ClientApp, either in this process
(``simulation.local_workers=0``) or in a pool of worker processes that keep their data and
model between rounds (``local_workers=N``). It behaves as Flower's simulation does: node ids
are not partition ids, a ClientApp exception becomes Flower's error reply, replies that miss
``round_timeout`` are dropped, and nothing depends on the order of replies.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid

from fedtna.config import RunConfig
from fedtna.errors import FedtnaError
from fedtna.fl.engines import register
from fedtna.masks import derive_seed

NODE_ID_SPACE = 2**62


def node_ids(seed: int, num_nodes: int) -> list[int]:
    """Distinct, seeded node ids that are not partition ids (Flower's are random 64-bit numbers)."""
    ids = [derive_seed(seed, "node", index) % NODE_ID_SPACE + num_nodes for index in range(num_nodes)]
    if len(set(ids)) != num_nodes:  # not seen for any seed; would only pair replies with the wrong node
        raise FedtnaError(f"node ids of seed {seed} collide; choose another seed")
    return ids


def error_reply(message: Message, error: BaseException) -> Message:
    """Flower's reply for a ClientApp that raised: an Error with the exception's type and text."""
    return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=f"{type(error).__name__}: {error}"),
                   reply_to=message)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a client with its own share of threads (``simulation.threads_per_client``), as a Ray actor
    would; the server's own work (evaluation) keeps this process's setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def call_client(app: ClientApp, message: Message, context: Context, threads: int) -> Message:
    """One ClientApp call; an exception becomes an error reply."""
    try:
        with torch_threads(threads):
            return app(message, context)
    except Exception as error:  # noqa: BLE001 - as Flower's runtime: a client's exception is its reply
        return error_reply(message, error)


# ----------------------------------------------------------------------------- worker processes
_WORKER: dict[str, Any] = {}


def _start_worker(config: RunConfig, threads: int) -> None:
    """Worker process initializer: one ClientApp for the whole run (its data and model stay cached)."""
    from fedtna.fl.client_app import make_client_app

    logging.getLogger("flwr").setLevel(logging.INFO if config.verbose else logging.ERROR)
    torch.set_num_threads(threads)
    _WORKER["app"], _WORKER["threads"] = make_client_app(config), threads


def _work(message: Message, context: Context) -> Message:
    return call_client(_WORKER["app"], message, context, _WORKER["threads"])


@dataclass
class Delivery:
    """Where ClientApp calls run: ``deliver`` yields each reply as it is ready, until ``deadline``."""

    config: RunConfig

    def deliver(self, jobs: list[tuple[Message, Context]], deadline: float) -> Iterator[Message]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the delivery holds (worker processes)."""


@dataclass
class InProcess(Delivery):
    """ClientApp calls one after another in this process."""

    def __post_init__(self) -> None:
        from fedtna.fl.client_app import make_client_app

        self.app = make_client_app(self.config)

    def deliver(self, jobs: list[tuple[Message, Context]], deadline: float) -> Iterator[Message]:
        for message, context in jobs:
            if time.monotonic() > deadline:
                return
            reply = call_client(self.app, message, context, self.config.simulation.threads_per_client)
            if time.monotonic() <= deadline:  # a reply after the round's timeout is lost, as in Flower
                yield reply


@dataclass
class WorkerPool(Delivery):
    """ClientApp calls spread over ``workers`` processes that live for the whole run."""

    workers: int = 1

    def __post_init__(self) -> None:
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker,
                                   initargs=(self.config, self.config.simulation.threads_per_client))

    def deliver(self, jobs: list[tuple[Message, Context]], deadline: float) -> Iterator[Message]:
        pending: dict[Future[Message], Message] = {self.pool.submit(_work, message, context): message
                                                   for message, context in jobs}
        broken = False
        try:
            while pending:
                done, _ = wait(pending, timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_COMPLETED)
                if not done:
                    return  # the rest missed the round's timeout; a running call finishes unheard
                for future in done:
                    message = pending.pop(future)
                    try:
                        yield future.result()
                    except BrokenProcessPool as error:  # a worker died (killed, out of memory)
                        broken = True
                        yield error_reply(message, error)
        finally:
            for future in pending:
                future.cancel()
            if broken:  # a broken pool takes no more work: start a fresh one for the next round
                self.pool.shutdown(wait=False, cancel_futures=True)
                self.pool = self._new_pool()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class LocalGrid(Grid):
    """A Flower Grid whose nodes are simulated in this machine's processes."""

    def __init__(self, delivery: Delivery, num_nodes: int, seed: int) -> None:
        self.delivery = delivery
        self._node_ids = node_ids(seed, num_nodes)
        self._contexts: dict[int, Context] = {}
        self._run: Any = None
        self._next_message = 0

    def set_run(self, run_id: Any) -> None:
        self._run = run_id

    @property
    def run(self) -> Any:
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return Message(content=content, message_type=message_type, dst_node_id=dst_node_id, group_id=group_id,
                       ttl=ttl)

    def get_node_ids(self) -> Iterable[int]:
        return list(self._node_ids)

    def context_of(self, node_id: int) -> Context:
        """The node's Context, made when it first gets a message (a simulated node holds no data)."""
        if node_id not in self._contexts:
            self._contexts[node_id] = Context(run_id=1, node_id=node_id, node_config={}, state=RecordDict(),
                                              run_config={})
        return self._contexts[node_id]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise NotImplementedError("the local engine delivers with send_and_receive")

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        raise NotImplementedError("the local engine delivers with send_and_receive")

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """Every message's reply that is ready within ``timeout`` seconds."""
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        jobs = [(message, self.context_of(message.metadata.dst_node_id)) for message in messages]
        return list(self.delivery.deliver(jobs, deadline))

    def close(self) -> None:
        self.delivery.close()


def make_delivery(config: RunConfig) -> Delivery:
    """In this process, or a worker pool of ``simulation.local_workers`` processes."""
    workers = config.simulation.local_workers
    return WorkerPool(config, workers=workers) if workers > 0 else InProcess(config)


def run_on_grid(config: RunConfig, delivery: Delivery) -> dict[str, Any]:
    """Run the ServerApp on a ``LocalGrid`` with ``delivery``; returns the run summary."""
    from fedtna.fl.server_app import make_server_app

    logging.getLogger("flwr").setLevel(logging.INFO if config.verbose else logging.ERROR)
    results: dict[str, Any] = {}
    started = time.perf_counter()
    grid = LocalGrid(delivery, config.num_clients, config.seed)
    try:
        app = make_server_app(config, results, simulated_nodes=True)
        app(grid, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={}))
    finally:
        grid.close()
    if "summary" not in results:
        raise FedtnaError("the run ended without a result; rerun with verbose=true to see why")
    summary = results["summary"]
    summary["simulation_wall_seconds"] = round(time.perf_counter() - started, 3)
    return summary


@register("local")
def simulate_locally(config: RunConfig) -> dict[str, Any]:
    """Clients in this process or in a pool of ``simulation.local_workers`` processes."""
    summary = run_on_grid(config, make_delivery(config))
    summary["local_workers"] = config.simulation.local_workers
    return summary
