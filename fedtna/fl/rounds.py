"""The federated round loop: configure, send, aggregate, evaluate — from any round, so runs can resume.

It does what Flower's ``Strategy.start`` does for the Message API, round by round, but can
start after round 1 (resumption) and hands every finished round to a callback that
evaluates, records, checks for divergence and checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp import Grid

from fedtna.fl.strategies.base import SeededStrategy

RoundCallback = Callable[[int, ArrayRecord], None]


def run_rounds(strategy: SeededStrategy, grid: Grid, arrays: ArrayRecord, first_round: int, last_round: int,
               timeout: float, on_round_end: RoundCallback) -> ArrayRecord:
    """Rounds ``first_round..last_round``; returns the final global arrays."""
    for server_round in range(first_round, last_round + 1):
        messages = list(strategy.configure_train(server_round, arrays, ConfigRecord(), grid))
        replies = grid.send_and_receive(messages, timeout=timeout) if messages else []
        aggregated, _ = strategy.aggregate_train(server_round, replies)
        if aggregated is not None:
            arrays = aggregated
        evaluations = list(strategy.configure_evaluate(server_round, arrays, ConfigRecord(), grid))
        if evaluations:
            strategy.aggregate_evaluate(server_round, grid.send_and_receive(evaluations, timeout=timeout))
        on_round_end(server_round, arrays)
    return arrays
