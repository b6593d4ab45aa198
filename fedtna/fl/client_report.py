"""What a client reports back, in one dataclass: the mirror of :class:`~fedtna.fl.round_plan.RoundPlan`.

A client builds a :class:`ClientReport` and replies with ``report.to_record()`` as the
MetricRecord ``metrics``; the strategy reads it back with :meth:`ClientReport.from_record`.
Every key of the exchange is defined here once. The key strings are the wire format of
deployed clients and stored runs: do not rename them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flwr.app import MetricRecord, MetricRecordValues

PARTITION_ID_KEY = "partition-id"  # the config key naming a client's partition (node config and messages)
NUM_EXAMPLES = "num-examples"
PARTITION_ID = "partition_id"
TRAIN_LOSS = "train_loss"
CLIENT_LOSS = "client_loss"
CLIENT_ACCURACY = "client_accuracy"
FIXED_FRACTION = "fixed_fraction"
ANCHOR_DRIFT = "anchor_drift"
MASK_CHECKSUM = "mask_checksum"


@dataclass(frozen=True)
class MaskReport:
    """The masks a client trained under (``fedtna.fl.phase_metrics``)."""

    fixed_fraction: float
    anchor_drift: float
    mask_checksum: int


@dataclass(frozen=True)
class ClientReport:
    """One client's reply metrics of a train or an evaluate round.

    ``partition_id`` is None only in replies that do not name it (the server then uses the
    partition of the sending node).
    """

    num_examples: int
    partition_id: int | None = None
    train_loss: float | None = None
    mask: MaskReport | None = None
    client_loss: float | None = None
    client_accuracy: float | None = None

    def to_record(self) -> MetricRecord:
        """The MetricRecord ``metrics`` of the reply (key order as fedtna has always sent it)."""
        values: dict[str, MetricRecordValues] = {NUM_EXAMPLES: self.num_examples}
        optional: dict[str, float | int | None] = {
            TRAIN_LOSS: self.train_loss, CLIENT_LOSS: self.client_loss,
            CLIENT_ACCURACY: self.client_accuracy, PARTITION_ID: self.partition_id}
        values.update({key: value for key, value in optional.items() if value is not None})
        if self.mask is not None:
            values.update({FIXED_FRACTION: self.mask.fixed_fraction, ANCHOR_DRIFT: self.mask.anchor_drift,
                           MASK_CHECKSUM: self.mask.mask_checksum})
        return MetricRecord(values)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ClientReport:
        """Inverse of :meth:`to_record`; other keys are ignored."""

        def number(key: str) -> float | None:
            return float(record[key]) if key in record else None

        mask = None
        if MASK_CHECKSUM in record:
            mask = MaskReport(fixed_fraction=float(record.get(FIXED_FRACTION, 0.0)),
                              anchor_drift=float(record.get(ANCHOR_DRIFT, 0.0)),
                              mask_checksum=int(record[MASK_CHECKSUM]))
        partition = record.get(PARTITION_ID)
        return cls(num_examples=int(record.get(NUM_EXAMPLES, 0)),
                   partition_id=int(partition) if partition is not None else None,
                   train_loss=number(TRAIN_LOSS), mask=mask, client_loss=number(CLIENT_LOSS),
                   client_accuracy=number(CLIENT_ACCURACY))
