"""The server side every fedtna strategy shares, as a Flower ``FedAvg`` subclass.

It replaces Flower's unseeded node sampling with sampling of partition ids seeded by
the run seed, puts a round seed and the client schedule into each train message,
aggregates replies in partition order (bit-reproducible), checks the mask checksums
the clients report, and keeps the anchors of the new global model exactly at their
previous values. Server optimizers (FedAvgM, FedAdam, ...) compose on top of it, see
``fedtna.strategies.compose``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from logging import WARNING
from typing import Any, ClassVar

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedtna.errors import ConfigError, FedtnaError
from fedtna.masks import FixedMasks, derive_seed, masks_checksum
from fedtna.schedules import get_schedule

NUM_EXAMPLES = "num-examples"


class MaskMismatchError(FedtnaError):
    """Clients expanded the round seed into different masks."""


class ClientFailureError(FedtnaError):
    """Every client of a round failed."""


def sample_size(num_clients: int, fraction: float) -> int:
    """Clients per round for a fraction of ``num_clients`` (at least one)."""
    return max(1, int(num_clients * fraction + 1e-9))


class SeededStrategy(FedAvg):
    """FedAvg with seeded sampling, round seeds, deterministic aggregation and self-checks.

    ``schedule`` names the client-side training schedule (``fedtna/schedules/``); a strategy
    YAML may override it with a ``schedule:`` key, so a new mask schedule needs one schedule
    module and one YAML (e.g. ``_target_: fedtna.strategies.fedpfn.FedPFN`` + ``schedule: mine``).
    """

    schedule: ClassVar[str] = "full"
    uses_masks: ClassVar[bool] = False

    def bind_run(
        self,
        run_config: Mapping[str, Any],
        node_of_partition: Mapping[int, int],
        parameter_shapes: Mapping[str, torch.Size],
    ) -> None:
        """Attach the run's config and the partition -> node map before ``start``."""
        self.run_config = run_config
        self.strategy_options = dict(run_config.get("strategy", {}))
        self.node_of_partition = dict(node_of_partition)
        self.partition_of_node = {node: part for part, node in self.node_of_partition.items()}
        self.parameter_shapes = dict(parameter_shapes)
        self.round_masks: FixedMasks | None = None
        self.last_train_metrics: dict[str, float] = {}
        self.last_evaluate_metrics: dict[str, float] = {}

    @classmethod
    def check_config(cls, run_config: Mapping[str, Any]) -> None:
        """Strategy-specific range checks; raise ConfigError with one clear line."""
        mu = float(run_config["strategy"].get("proximal_mu", 0.0))
        if mu < 0:
            raise ConfigError(f"strategy.proximal_mu={mu} must be >= 0")
        get_schedule(str(run_config["strategy"].get("schedule") or cls.schedule))

    # ----------------------------------------------------------------- config
    def round_seed(self, server_round: int) -> int:
        """The integer seed of a round, derived from the run seed (< 2^63)."""
        return derive_seed(self.run_config["seed"], "round", server_round)

    def round_config(self, server_round: int) -> dict[str, Any]:
        """Keys every client of this round receives; subclasses add theirs."""
        return {
            "server-round": server_round,
            "round-seed": self.round_seed(server_round),
            "schedule": str(self.strategy_options.get("schedule") or self.schedule),
            "proximal-mu": float(self.strategy_options.get("proximal_mu", 0.0)),
        }

    def expected_masks(self, round_config: Mapping[str, Any]) -> FixedMasks | None:
        """The fixed masks clients will build this round (None without masks)."""
        return None

    def _sample_partitions(self, server_round: int, fraction: float, purpose: str) -> list[int]:
        partitions = sorted(self.node_of_partition)
        count = min(len(partitions), sample_size(len(partitions), fraction))
        rng = random.Random(derive_seed(self.run_config["seed"], purpose, server_round))
        return sorted(rng.sample(partitions, count))

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Send the global model and the round config to the seeded sample of partitions."""
        round_config = self.round_config(server_round)
        self.round_masks = self.expected_masks(round_config)
        self.previous_arrays = arrays
        record = RecordDict({self.arrayrecord_key: arrays,
                             self.configrecord_key: ConfigRecord({**config, **round_config})})
        chosen = self._sample_partitions(server_round, self.fraction_train, "train-sample")
        return [
            Message(content=record, dst_node_id=self.node_of_partition[part], message_type=MessageType.TRAIN)
            for part in chosen
        ]

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Federated evaluation on a seeded sample (none when fraction_evaluate is 0)."""
        if self.fraction_evaluate <= 0.0:
            return []
        record = RecordDict({self.arrayrecord_key: arrays,
                             self.configrecord_key: ConfigRecord({**config, "server-round": server_round})})
        chosen = self._sample_partitions(server_round, self.fraction_evaluate, "evaluate-sample")
        return [
            Message(content=record, dst_node_id=self.node_of_partition[part], message_type=MessageType.EVALUATE)
            for part in chosen
        ]

    # -------------------------------------------------------------- aggregate
    def _ordered_valid(self, replies: Iterable[Message], server_round: int, kind: str) -> list[Message]:
        replies = list(replies)
        failed = [reply for reply in replies if reply.has_error()]
        for reply in failed:
            log(WARNING, "round %s %s: client on node %s failed: %s", server_round, kind,
                reply.metadata.src_node_id, reply.error.reason)
        valid = [reply for reply in replies if not reply.has_error()]
        if replies and not valid:
            reasons = "; ".join(str(reply.error.reason).strip().splitlines()[-1] for reply in failed[:3])
            raise ClientFailureError(f"round {server_round}: all {len(failed)} clients failed ({kind}): {reasons}")
        self.failed_clients = len(failed)
        return sorted(valid, key=lambda reply: self.partition_of_node.get(reply.metadata.src_node_id, 0))

    def _check_checksums(self, server_round: int, replies: list[Message]) -> None:
        if self.round_masks is None:
            return
        expected = masks_checksum(self.round_masks)
        reported = {
            self.partition_of_node.get(reply.metadata.src_node_id): int(reply.content["metrics"]["mask_checksum"])
            for reply in replies
        }
        wrong = {part: value for part, value in reported.items() if value != expected}
        if wrong:
            raise MaskMismatchError(
                f"round {server_round}: clients {sorted(wrong)} built a mask with checksum "
                f"{sorted(set(wrong.values()))}, the server expects {expected}; masks disagree"
            )

    def _weighted_mean_arrays(self, replies: list[Message]) -> dict[str, np.ndarray]:
        weights = np.array([float(reply.content["metrics"][NUM_EXAMPLES]) for reply in replies], dtype=np.float64)
        weights = weights / weights.sum()
        first = replies[0].content[self.arrayrecord_key]
        averaged: dict[str, np.ndarray] = {}
        for key in first.keys():
            total = np.zeros(first[key].shape, dtype=np.float64)
            for weight, reply in zip(weights, replies, strict=True):
                total += weight * reply.content[self.arrayrecord_key][key].numpy()
            averaged[key] = total
        return averaged

    def _restore_anchors(self, averaged: dict[str, np.ndarray]) -> None:
        """Anchors of the new global model equal the previous global values, bit for bit."""
        if self.round_masks is None:
            return
        for name, mask in self.round_masks.items():
            previous = self.previous_arrays[name].numpy()
            averaged[name] = np.where(mask.numpy(), previous, averaged[name])

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Sample-size-weighted mean in partition order, with exact anchors."""
        valid = self._ordered_valid(replies, server_round, "train")
        if not valid:
            return None, None
        self._check_checksums(server_round, valid)
        averaged = self._weighted_mean_arrays(valid)
        dtypes = {key: self.previous_arrays[key].numpy().dtype for key in averaged}
        averaged = {key: value.astype(dtypes[key]) if np.issubdtype(dtypes[key], np.floating)
                    else np.rint(value).astype(dtypes[key]) for key, value in averaged.items()}
        self._restore_anchors(averaged)
        metrics = aggregate_client_metrics([reply.content["metrics"] for reply in valid])
        metrics["clients"] = len(valid)
        metrics["failed_clients"] = self.failed_clients
        self.last_train_metrics = metrics
        return ArrayRecord(array_dict={k: Array(np.ascontiguousarray(v)) for k, v in averaged.items()}), MetricRecord(metrics)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Weighted mean of the clients' evaluation metrics, in partition order."""
        valid = self._ordered_valid(replies, server_round, "evaluate")
        if not valid:
            return None
        metrics = aggregate_client_metrics([reply.content["metrics"] for reply in valid])
        self.last_evaluate_metrics = metrics
        return MetricRecord(metrics)


MAX_KEYS = ("anchor_drift",)
SKIPPED_KEYS = ("mask_checksum", "partition_id", NUM_EXAMPLES)


def aggregate_client_metrics(records: list[MetricRecord]) -> dict[str, float]:
    """Example-weighted means; maxima for drift; checksums and ids left out."""
    weights = [float(record[NUM_EXAMPLES]) for record in records]
    total = sum(weights)
    merged: dict[str, float] = {NUM_EXAMPLES: total}
    for key in records[0].keys():
        if key in SKIPPED_KEYS:
            continue
        values = [float(record[key]) for record in records]
        if key in MAX_KEYS:
            merged[key] = max(values)
        else:
            merged[key] = sum(w * v for w, v in zip(weights, values, strict=True)) / total
    return merged
