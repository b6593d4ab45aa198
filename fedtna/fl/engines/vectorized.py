"""The vectorized engine: the sampled clients of a round trained together as one batched model.

It is the local engine with one change: the TRAIN messages of a round go to
``fedtna.fl.vectorized_round.train_messages_vectorized`` together (``torch.func`` over the stacked
clients, ``simulation.clients_per_batch`` at a time, all of this process's threads), while every other
message (evaluation) is answered one by one as in ``local``. Models with BatchNorm or Dropout are
refused before any work; ``local`` and ``ray`` run them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flwr.app import Context, Message, MessageType

from fedtna.config import RunConfig
from fedtna.fl.engines import register
from fedtna.fl.engines.local import InProcess, run_on_grid
from fedtna.vectorized_training import BatchingCost


@dataclass
class Vectorized(InProcess):
    """A round's TRAIN messages in one batched call; the rest one after another."""

    costs: list[BatchingCost] = field(default_factory=list)

    def deliver(self, jobs: list[tuple[Message, Context]], deadline: float) -> Iterator[Message]:
        from fedtna.fl.client_app import partition_id_of
        from fedtna.fl.vectorized_round import train_messages_vectorized

        train = [(message, context) for message, context in jobs if message.metadata.message_type == MessageType.TRAIN]
        if train and time.monotonic() <= deadline:
            partitions = {id(message): partition_id_of(context, message) for message, context in train}
            replies = train_messages_vectorized(self.config, [message for message, _ in train],
                                                lambda message: partitions[id(message)],
                                                self.config.simulation.clients_per_batch, self.costs)
            if time.monotonic() <= deadline:  # one batched call: its replies all arrive, or none in time
                yield from replies
        yield from super().deliver([job for job in jobs if job not in train], deadline)

    def padding_waste(self) -> float:
        """Padded example slots over all computed slots of the run."""
        slots = sum(cost.example_slots for cost in self.costs)
        return sum(cost.padded_slots for cost in self.costs) / slots if slots else 0.0


def check_vectorizable_model(config: RunConfig) -> None:
    """The run's model must train as one batched model (no BatchNorm, no Dropout)."""
    from fedtna.fl.experiment import initial_model
    from fedtna.vectorized_training import check_vectorizable

    check_vectorizable(initial_model(config), config.model_spec.name)


@register("vectorized", check=check_vectorizable_model)
def simulate_vectorized(config: RunConfig) -> dict[str, Any]:
    """Run the ServerApp on a ``LocalGrid`` whose deliveries train each round's clients together."""
    delivery = Vectorized(config)
    summary = run_on_grid(config, delivery)
    summary["padding_waste"] = round(delivery.padding_waste(), 6)
    summary["clients_per_batch"] = config.simulation.clients_per_batch
    return summary
