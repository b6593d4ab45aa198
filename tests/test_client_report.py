"""ClientReport: the reply metrics' one definition, and their unchanged wire format."""

from __future__ import annotations

from fedtna.fl.client_report import ClientReport, MaskReport


def test_train_report_round_trips_with_the_wire_keys_in_order() -> None:
    report = ClientReport(num_examples=12, partition_id=3, train_loss=0.5,
                          mask=MaskReport(fixed_fraction=0.4, anchor_drift=0.0, mask_checksum=2**47 + 5))
    record = report.to_record()
    assert list(record) == ["num-examples", "train_loss", "partition_id", "fixed_fraction", "anchor_drift",
                            "mask_checksum"]
    assert record["mask_checksum"] == 2**47 + 5
    assert ClientReport.from_record(record) == report


def test_evaluate_report_round_trips_with_the_wire_keys_in_order() -> None:
    report = ClientReport(num_examples=7, partition_id=0, client_loss=1.25, client_accuracy=0.5)
    record = report.to_record()
    assert list(record) == ["num-examples", "client_loss", "client_accuracy", "partition_id"]
    assert ClientReport.from_record(record) == report


def test_a_reply_without_partition_or_masks_reads_as_none() -> None:
    report = ClientReport.from_record({"num-examples": 4, "accuracy": 0.1})
    assert report == ClientReport(num_examples=4)
