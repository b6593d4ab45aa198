"""A round's TRAIN messages answered together by one batched model (``simulation.backend=vectorized``).

The clients are prepared exactly as the ClientApp prepares one (``client_app.round_fault`` and
``prepare_train_job``: data, schedule phases, decayed lr, seeded generator), trained together by
``fedtna.vectorized_training.vectorized_local_train``, and each message is answered with the
reply ``client_app.train_reply`` builds, so strategies cannot tell this path from the sequential
one. A client that fails to prepare (an injected crash) gets the local engine's error reply; the
others train.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from flwr.app import ArrayRecord, Message, MessageType

from fedtna.config import RunConfig
from fedtna.fl.client_app import TrainJob, client_model, load_global, prepare_train_job, round_fault, train_reply
from fedtna.fl.engines.local import error_reply
from fedtna.fl.round_plan import RoundPlan
from fedtna.vectorized_training import (
    DEFAULT_MAX_CLIENTS_PER_CHUNK,
    BatchingCost,
    ClientBatchJob,
    check_vectorizable,
    vectorized_local_train,
)


def _same_arrays(first: ArrayRecord, other: ArrayRecord) -> bool:
    """Whether two array records hold the same arrays (the same object in practice, bytes otherwise)."""
    if first is other:
        return True
    return list(first) == list(other) and all(
        first[key].shape == other[key].shape and first[key].dtype == other[key].dtype
        and first[key].data == other[key].data for key in first)


def round_plan_of(messages: Sequence[Message]) -> RoundPlan:
    """The one RoundPlan and global arrays every message shares; a ValueError names what differs."""
    if not messages:
        raise ValueError("train_messages_vectorized needs at least one message")
    if any(message.metadata.message_type != MessageType.TRAIN for message in messages):
        raise ValueError("train_messages_vectorized answers TRAIN messages only")
    plan = RoundPlan.from_record(messages[0].content["config"])
    arrays = messages[0].content.array_records["arrays"]
    for message in messages[1:]:
        if RoundPlan.from_record(message.content["config"]) != plan:
            raise ValueError("the messages of a vectorized round must carry the same round plan")
        if not _same_arrays(arrays, message.content.array_records["arrays"]):
            raise ValueError("the messages of a vectorized round must carry the same global arrays")
    return plan


def train_messages_vectorized(
    config: RunConfig,
    messages: list[Message],
    partition_of: Callable[[Message], int],
    max_clients_per_chunk: int = DEFAULT_MAX_CLIENTS_PER_CHUNK,
    costs: list[BatchingCost] | None = None,
) -> list[Message]:
    """One reply per TRAIN message of one round (same order), the clients trained as one batched model.

    ``partition_of`` names each message's partition (as ``client_app.partition_id_of`` does for a
    node). BatchNorm models raise a one-line ConfigError before any work. ``costs``, when given,
    receives the round's batching cost (padding waste).
    """
    plan = round_plan_of(messages)
    threads = torch.get_num_threads()
    model = client_model(config)  # the first build sets the per-client thread count; this engine wants all
    torch.set_num_threads(threads)
    check_vectorizable(model, config.model_spec.name)
    load_global(model, messages[0])
    replies: list[Message | None] = [None] * len(messages)
    jobs: dict[int, TrainJob] = {}
    for index, message in enumerate(messages):
        try:
            partition_id = partition_of(message)
            jobs[index] = prepare_train_job(config, partition_id, plan, round_fault(config, partition_id, plan), model)
        except Exception as error:  # noqa: BLE001 -- as a Grid does: a raising client becomes an error reply
            replies[index] = error_reply(message, error)
    if jobs:
        first = next(iter(jobs.values()))  # one round plan: the same optimizer settings and transform for all
        result = vectorized_local_train(
            model, [ClientBatchJob(job.inputs, job.labels, job.phases, job.generator) for job in jobs.values()],
            optimizer_settings=first.optimizer_settings, batch_size=config.batch_size,
            proximal_mu=plan.proximal_mu, batch_transform=first.batch_transform,
            max_clients_per_chunk=max_clients_per_chunk)
        if costs is not None:
            costs.append(result.cost)
        for (index, job), state, stats in zip(jobs.items(), result.states, result.stats, strict=True):
            replies[index] = Message(train_reply(job, state, stats, model), reply_to=messages[index])
    return [reply for reply in replies if reply is not None]
