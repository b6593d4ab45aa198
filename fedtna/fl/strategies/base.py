"""The server side every fedtna strategy shares, as a Flower ``FedAvg`` subclass.

It replaces Flower's unseeded node sampling with sampling of partition ids seeded by
the run seed, sends a :class:`~fedtna.fl.round_plan.RoundPlan` with each train message,
aggregates replies in partition order in float64 (bit-reproducible), checks the mask
checksums the clients report, and keeps the anchors of the new global model exactly at
their previous values. Server optimizers (FedAvgM, FedAdam, ...) compose on top of it,
see ``fedtna.fl.strategies.compose``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from logging import WARNING
from typing import ClassVar, NamedTuple, cast

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.app.typing import ConfigRecordValues
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedtna.errors import ConfigError, FedtnaError, RunFailedError, out_of_range
from fedtna.fl.client_report import (
    ANCHOR_DRIFT,
    MASK_CHECKSUM,
    NUM_EXAMPLES,
    PARTITION_ID,
    PARTITION_ID_KEY,
    ClientReport,
)
from fedtna.fl.phase_metrics import accepted_checksums
from fedtna.fl.records import Scalar, array_record, scalars
from fedtna.fl.round_plan import RoundPlan, plan_masks, shapes_as_parameters
from fedtna.fl.schedules import get_schedule
from fedtna.fl.strategies.flower_options import check_flower_options
from fedtna.fl.update_geometry import update_geometry
from fedtna.masks import FixedMasks, derive_seed

NON_FINITE = "holds NaN or Inf"


FAILED_CLIENTS = "failed_clients"
REJECTED_CLIENTS = "rejected_clients"


class ReplyTally(NamedTuple):
    """A round's usable replies, in partition order, and how many failed or were rejected."""

    valid: list[Message]
    failed: int
    rejected: int


class MaskMismatchError(FedtnaError):
    """Clients expanded the round seed into different masks."""


class ClientFailureError(RunFailedError):
    """Too few clients of a round sent a valid update (``min_clients_fraction``; at least one)."""

    def __init__(self, message: str, non_finite_updates: int = 0) -> None:
        super().__init__(message)
        self.non_finite_updates = non_finite_updates


def sample_size(num_clients: int, fraction: float) -> int:
    """Clients per round for a fraction of ``num_clients`` (at least one)."""
    return max(1, int(num_clients * fraction + 1e-9))


class SeededStrategy(FedAvg):
    """FedAvg with seeded sampling, round plans, deterministic aggregation and self-checks.

    Args:
        seed: the run seed; round seeds and client samples derive from it.
        schedule: the client schedule (``fedtna/fl/schedules/``); None = the class's own.
        proximal_mu: FedProx's mu; clients add mu/2 * ||w - w_global||^2 (0 = off).
        min_clients_fraction: a round with fewer valid updates than this fraction of its sampled
            clients fails the run (0 = one valid update is enough).
        **flower_options: Flower ``FedAvg`` arguments; the ones fedtna does not honour are refused
            (``fedtna.fl.strategies.flower_options``).
    """

    default_schedule: ClassVar[str] = "full"

    def __init__(self, *, seed: int, schedule: str | None = None, proximal_mu: float = 0.0,
                 min_clients_fraction: float = 0.0, **flower_options: object) -> None:
        check_flower_options(flower_options)
        super().__init__(**flower_options)  # type: ignore[arg-type]  # Flower's FedAvg kwargs, passed through
        if proximal_mu < 0:
            raise out_of_range("strategy.proximal_mu", proximal_mu, ">= 0")
        self.seed = seed
        self.schedule = schedule or self.default_schedule
        get_schedule(self.schedule)
        self.proximal_mu = float(proximal_mu)
        self.min_clients_fraction = float(min_clients_fraction)
        self.sampled_clients = 0
        self.node_of_partition: dict[int, int] = {}
        self.partition_of_node: dict[int, int] = {}
        self.parameter_shapes: dict[str, torch.Size] = {}
        self.round_masks: FixedMasks | None = None
        self.previous_arrays: ArrayRecord | None = None

    def attach(self, node_of_partition: Mapping[int, int], parameter_shapes: Mapping[str, torch.Size]) -> None:
        """Bind what is known only at run time: the partition -> node map and the model's parameters."""
        if len(node_of_partition) < self.min_available_nodes:
            raise ConfigError(f"min_available_nodes={self.min_available_nodes} but only {len(node_of_partition)} "
                              "partitions are served")
        self.node_of_partition = dict(node_of_partition)
        self.partition_of_node = {}
        for part, node in sorted(self.node_of_partition.items()):
            self.partition_of_node.setdefault(node, part)
        self.parameter_shapes = dict(parameter_shapes)

    # ------------------------------------------------------------------ plan
    def round_seed(self, server_round: int) -> int:
        """The integer seed of a round, derived from the run seed (< 2^63)."""
        return derive_seed(self.seed, "round", server_round)

    def round_plan(self, server_round: int) -> RoundPlan:
        """What every client of this round receives; subclasses add their parts."""
        return RoundPlan(server_round=server_round, round_seed=self.round_seed(server_round),
                         schedule=self.schedule, proximal_mu=self.proximal_mu)

    def fixes_anchors(self) -> bool:
        """Whether the round mask's entries stay at the previous global values (FedPFN yes, FedPNU no)."""
        return True

    def _sample_partitions(self, server_round: int, fraction: float, purpose: str) -> list[int]:
        partitions = sorted(self.node_of_partition)
        count = min(len(partitions), sample_size(len(partitions), fraction))
        rng = random.Random(derive_seed(self.seed, purpose, server_round))
        return sorted(rng.sample(partitions, count))

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Send the global model and the round plan to the seeded sample of partitions."""
        plan = self.round_plan(server_round)
        self.round_masks = plan_masks(plan, shapes_as_parameters(self.parameter_shapes))
        self.previous_arrays = arrays
        round_config = {**config, **plan.to_record()}
        chosen = self._sample_partitions(server_round, self.fraction_train, "train-sample")
        self.sampled_clients = len(chosen)
        return [self._message(arrays, round_config, part, MessageType.TRAIN) for part in chosen]

    def _message(self, arrays: ArrayRecord, config: Mapping[str, ConfigRecordValues], partition: int,
                 kind: str) -> Message:
        """One client's message; it names the partition to use (simulated nodes may serve any)."""
        content = RecordDict({self.arrayrecord_key: arrays,
                              self.configrecord_key: ConfigRecord({**config, PARTITION_ID_KEY: partition})})
        return Message(content=content, dst_node_id=self.node_of_partition[partition], message_type=kind)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Federated evaluation on a seeded sample (none when fraction_evaluate is 0)."""
        if self.fraction_evaluate <= 0.0:
            return []
        evaluate_config = {**config, "server-round": server_round}
        chosen = self._sample_partitions(server_round, self.fraction_evaluate, "evaluate-sample")
        return [self._message(arrays, evaluate_config, part, MessageType.EVALUATE) for part in chosen]

    # ------------------------------------------------------------- aggregate
    def _ordered_valid(self, replies: Iterable[Message], server_round: int, kind: str) -> ReplyTally:
        """Replies without error that pass ``update_problem``, in partition order, and the others' counts."""
        replies = list(replies)
        failed = [reply for reply in replies if reply.has_error()]
        for reply in failed:
            log(WARNING, "round %s %s: client of node %s (partition %s) failed: %s", server_round, kind,
                reply.metadata.src_node_id, self.partition_of_reply(reply), reply.error.reason)
        valid, rejected, non_finite = [], 0, 0
        for reply in (reply for reply in replies if not reply.has_error()):
            problem = self.update_problem(reply) if kind == "train" else None
            if problem is None:
                valid.append(reply)
                continue
            rejected += 1
            non_finite += problem.endswith(NON_FINITE)
            log(WARNING, "round %s: rejected the update of partition %s: %s", server_round,
                self.partition_of_reply(reply), problem)
        sampled = self.sampled_clients if kind == "train" else len(replies)
        missing = max(0, sampled - len(replies))  # sampled clients without a reply within round_timeout
        if missing:
            log(WARNING, "round %s %s: %s of %s sampled clients sent no reply in time", server_round, kind, missing,
                sampled)
        needed = max(1, math.ceil(self.min_clients_fraction * sampled - 1e-9)) if replies else 0
        if len(valid) < needed:
            reasons = "; ".join(str(reply.error.reason).strip().splitlines()[-1] for reply in failed[:3])
            raise ClientFailureError(
                f"round {server_round} ({kind}): {len(valid)} valid of {sampled} sampled clients, "
                f"{len(failed) + missing} failed, {rejected} rejected; need {needed} "
                f"(min_clients_fraction={self.min_clients_fraction})"
                + (f": {reasons}" if reasons else ""), non_finite_updates=non_finite)
        return ReplyTally(sorted(valid, key=self.partition_of_reply), failed=len(failed) + missing,
                          rejected=rejected)

    def partition_of_reply(self, reply: Message) -> int:
        """The partition a reply trained on: its ``partition_id`` metric (a simulated node may serve several
        partitions), else the partition of the node it came from."""
        report = report_of(reply)
        if report is not None and report.partition_id is not None:
            return report.partition_id
        return self.partition_of_node.get(reply.metadata.src_node_id, -1)

    def update_problem(self, reply: Message) -> str | None:
        """Why a client's update cannot be averaged (keys, shapes, dtypes, non-finite values), or None."""
        assert self.previous_arrays is not None
        arrays = cast(ArrayRecord | None, reply.content.get(self.arrayrecord_key))
        if arrays is None:
            return "no arrays in the reply"
        differing = sorted(set(arrays.keys()) ^ set(self.previous_arrays.keys()))
        if differing:
            return f"its keys differ from the global model's: {differing[:3]}"
        for key in self.previous_arrays:
            sent, got = self.previous_arrays[key], arrays[key]
            if tuple(got.shape) != tuple(sent.shape) or got.dtype != sent.dtype:
                return f"{key} is {got.dtype}{list(got.shape)}, expected {sent.dtype}{list(sent.shape)}"
            values = got.numpy()
            if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
                return f"{key} {NON_FINITE}"
        report = report_of(reply)
        examples = report.num_examples if report is not None else 0
        if examples <= 0:
            return f"{NUM_EXAMPLES}={examples!r} is not a positive count"
        return None

    def phase_masks(self) -> list[FixedMasks]:
        """The masks a client's phases may hold this round (``fedtna.fl.phase_metrics``): the round mask."""
        return [self.round_masks] if self.round_masks is not None else []

    def _check_checksums(self, server_round: int, replies: list[Message]) -> None:
        if self.round_masks is None:
            return
        accepted = accepted_checksums(self.phase_masks())
        reported = {self.partition_of_reply(reply): checksum_of(reply) for reply in replies}
        wrong = {part: value for part, value in reported.items() if value not in accepted}
        if wrong:
            expected = next(iter(accepted)) if len(accepted) == 1 else f"one of {sorted(accepted)}"
            raise MaskMismatchError(
                f"round {server_round}: clients {sorted(wrong)} built a mask with checksum "
                f"{sorted(set(wrong.values()))}, the server expects {expected}; masks disagree"
            )

    def _weighted_mean_arrays(self, clients: list[dict[str, np.ndarray]], weights: np.ndarray) -> dict[str, np.ndarray]:
        weights = weights / weights.sum()
        averaged: dict[str, np.ndarray] = {}
        for key in clients[0]:
            total = np.zeros(clients[0][key].shape, dtype=np.float64)
            for weight, arrays in zip(weights, clients, strict=True):
                total += weight * arrays[key]
            averaged[key] = total
        return averaged

    def restore_anchors(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Anchors of the new global model equal the previous global values, bit for bit."""
        if self.round_masks is None or self.previous_arrays is None or not self.fixes_anchors():
            return arrays
        restored = dict(arrays)
        for name, mask in self.round_masks.items():
            restored[name] = np.where(mask.numpy(), self.previous_arrays[name].numpy(), arrays[name])
        return restored

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Sample-size-weighted mean in partition order, with exact anchors."""
        tally = self._ordered_valid(replies, server_round, "train")
        valid = tally.valid
        if not valid:
            return None, None
        self._check_checksums(server_round, valid)
        first = array_record(valid[0].content, self.arrayrecord_key)
        clients = [{key: array_record(reply.content, self.arrayrecord_key)[key].numpy() for key in first}
                   for reply in valid]
        weights = np.array([float(ClientReport.from_record(scalars(reply.content, "metrics")).num_examples)
                            for reply in valid], dtype=np.float64)
        averaged = self._weighted_mean_arrays(clients, weights)
        assert self.previous_arrays is not None
        dtypes = {key: self.previous_arrays[key].numpy().dtype for key in averaged}
        averaged = {key: value.astype(dtypes[key]) if np.issubdtype(dtypes[key], np.floating)
                    else np.rint(value).astype(dtypes[key]) for key, value in averaged.items()}
        averaged = self.restore_anchors(averaged)
        metrics = aggregate_client_metrics([scalars(reply.content, "metrics") for reply in valid])
        metrics.update(update_geometry({key: self.previous_arrays[key].numpy() for key in averaged}, clients,
                                       weights, averaged).as_metrics())
        metrics["clients"] = len(valid)
        metrics[FAILED_CLIENTS] = tally.failed
        metrics[REJECTED_CLIENTS] = tally.rejected
        return as_array_record(averaged), MetricRecord(dict(metrics))

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Weighted mean of the clients' evaluation metrics, in partition order."""
        valid = self._ordered_valid(replies, server_round, "evaluate").valid
        if not valid:
            return None
        metrics = aggregate_client_metrics([scalars(reply.content, "metrics") for reply in valid])
        return MetricRecord(dict(metrics))


def report_of(reply: Message) -> ClientReport | None:
    """The ClientReport of a reply (None when it carries no metrics)."""
    if not reply.has_content() or "metrics" not in reply.content:
        return None
    return ClientReport.from_record(scalars(reply.content, "metrics"))


def checksum_of(reply: Message) -> int:
    """The mask checksum a reply reports; a MaskMismatchError when it reports none."""
    report = report_of(reply)
    if report is None or report.mask is None:
        raise MaskMismatchError(f"a client of node {reply.metadata.src_node_id} reported no {MASK_CHECKSUM}")
    return report.mask.mask_checksum


def as_array_record(arrays: Mapping[str, np.ndarray]) -> ArrayRecord:
    """An ArrayRecord of contiguous numpy arrays, in the given key order."""
    return ArrayRecord(array_dict={key: Array(np.ascontiguousarray(value)) for key, value in arrays.items()})


MAX_KEYS = (ANCHOR_DRIFT,)
SKIPPED_KEYS = (MASK_CHECKSUM, PARTITION_ID, NUM_EXAMPLES)


def aggregate_client_metrics(records: Sequence[Mapping[str, Scalar]]) -> dict[str, float]:
    """Example-weighted means; maxima for drift; checksums and ids left out."""
    weights = [float(record[NUM_EXAMPLES]) for record in records]
    total = sum(weights)
    merged: dict[str, float] = {NUM_EXAMPLES: total}
    for key in records[0]:
        if key in SKIPPED_KEYS:
            continue
        values = [float(record[key]) for record in records]
        if key in MAX_KEYS:
            merged[key] = max(values)
        else:
            merged[key] = sum(w * v for w, v in zip(weights, values, strict=True)) / total
    return merged
