"""The federated round loop: configure, send, aggregate, evaluate — from any round, so runs can resume.

It does what Flower's ``Strategy.start`` does for the Message API, round by round, but can
start after round 1 (resumption) and hands every finished round, as a :class:`RoundResult`
built from the strategy's return values, to a callback that evaluates, records, checks for
divergence and checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flwr.app import ArrayRecord, ConfigRecord, MetricRecord
from flwr.serverapp import Grid

from fedtna.fl.strategies.base import FAILED_CLIENTS, REJECTED_CLIENTS, SeededStrategy


@dataclass(frozen=True)
class RoundResult:
    """One finished round: the new global arrays and the aggregated client metrics."""

    server_round: int
    arrays: ArrayRecord
    train_metrics: dict[str, float] = field(default_factory=dict)
    evaluate_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def failed_clients(self) -> int:
        """Train clients that replied with an error (or not at all)."""
        return int(self.train_metrics.get(FAILED_CLIENTS, 0))

    @property
    def rejected_clients(self) -> int:
        """Train updates the strategy refused (``update_problem``)."""
        return int(self.train_metrics.get(REJECTED_CLIENTS, 0))


RoundCallback = Callable[[RoundResult], None]


def _as_dict(metrics: MetricRecord | None) -> dict[str, float]:
    return dict(metrics) if metrics is not None else {}  # type: ignore[arg-type]  # fedtna's metrics are scalars


def run_round(strategy: SeededStrategy, grid: Grid, arrays: ArrayRecord, server_round: int,
              timeout: float) -> RoundResult:
    """One round: train on the sampled clients, aggregate, evaluate on the evaluation sample."""
    messages = list(strategy.configure_train(server_round, arrays, ConfigRecord(), grid))
    replies = grid.send_and_receive(messages, timeout=timeout) if messages else []
    aggregated, train_metrics = strategy.aggregate_train(server_round, replies)
    if aggregated is not None:
        arrays = aggregated
    evaluate_metrics = None
    evaluations = list(strategy.configure_evaluate(server_round, arrays, ConfigRecord(), grid))
    if evaluations:
        evaluate_metrics = strategy.aggregate_evaluate(server_round, grid.send_and_receive(evaluations,
                                                                                          timeout=timeout))
    return RoundResult(server_round, arrays, _as_dict(train_metrics), _as_dict(evaluate_metrics))


def run_rounds(strategy: SeededStrategy, grid: Grid, arrays: ArrayRecord, first_round: int, last_round: int,
               timeout: float, on_round_end: RoundCallback) -> ArrayRecord:
    """Rounds ``first_round..last_round``; returns the final global arrays."""
    for server_round in range(first_round, last_round + 1):
        result = run_round(strategy, grid, arrays, server_round, timeout)
        arrays = result.arrays
        on_round_end(result)
    return arrays
