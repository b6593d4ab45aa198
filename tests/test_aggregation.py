"""Numerical unit tests of the server-side aggregation (no Ray, no subprocess, no model).

Each test builds a strategy directly, runs ``configure_train`` to fix the round's masks and
previous arrays, fabricates the clients' replies as Flower does (``Message(content,
reply_to=instruction)`` sets the reply's ``src_node_id`` to the instruction's destination)
and compares ``aggregate_train``'s output with a reference computed here in float64.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MessageType, MetricRecord, RecordDict

from fedtna.fl.round_plan import MaskPlan, RoundPlan
from fedtna.fl.strategies.base import (
    ClientFailureError,
    MaskMismatchError,
    aggregate_client_metrics,
)
from fedtna.fl.strategies.compose import compose
from fedtna.fl.strategies.fedavg import FedAvg
from fedtna.fl.strategies.fedpfn import FedPFN
from fedtna.fl.strategies.fedpnu import FedPNU
from fedtna.masks import MaskSpec, masks_checksum

SHAPES = {"w": torch.Size([4, 3]), "b": torch.Size([4])}
# Partition order 0, 1, 2 is neither the node-id order (1, 2, 0) nor its reverse.
NODES = {0: 303, 1: 101, 2: 202}
EXAMPLES = {0: 10, 1: 30, 2: 60}
FLOWER = {"fraction_train": 1.0, "fraction_evaluate": 0.0, "min_available_nodes": 3}
MASK = MaskSpec(0.5, "weight")


# ------------------------------------------------------------------ helpers
def global_arrays(seed: int = 0, *, with_int: bool = True, with_f64: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {"w": rng.standard_normal((4, 3)).astype(np.float32),
              "b": rng.standard_normal(4).astype(np.float32)}
    if with_int:
        arrays["num_batches_tracked"] = np.array([5, 100, 7], dtype=np.int64)
    if with_f64:
        arrays["d"] = rng.standard_normal(997)  # float64: summation order shows in the last bits
    return arrays


def client_arrays(base: dict[str, np.ndarray], partition: int, seed: int = 1) -> dict[str, np.ndarray]:
    """What a client sends back: every entry moved, anchors included (a buggy client)."""
    rng = np.random.default_rng([seed, partition])
    moved = {}
    for key, value in base.items():
        if np.issubdtype(value.dtype, np.floating):
            moved[key] = (value + rng.standard_normal(value.shape)).astype(value.dtype)
    if "num_batches_tracked" in base:
        # Weighted 0.1/0.3/0.6: [2.7, 100.6, 7.6] -> rounded [3, 101, 8], truncated [2, 100, 7].
        moved["num_batches_tracked"] = np.array([[0, 100, 7], [9, 100, 7], [0, 101, 8]][partition], dtype=np.int64)
    return moved


def record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord(array_dict={key: Array(np.ascontiguousarray(value)) for key, value in arrays.items()})


def as_numpy(arrays: ArrayRecord) -> dict[str, np.ndarray]:
    return {key: array.numpy() for key, array in arrays.items()}


def make(strategy_class, **options):
    strategy = strategy_class(seed=0, **FLOWER, **options)
    strategy.attach(node_of_partition=NODES, parameter_shapes=SHAPES)
    return strategy


def configure(strategy, server_round: int, arrays: dict[str, np.ndarray]) -> list[Message]:
    messages = list(strategy.configure_train(server_round, record(arrays), ConfigRecord({}), grid=None))
    assert [message.metadata.dst_node_id for message in messages] == [NODES[p] for p in sorted(NODES)]
    for message in messages:
        assert message.metadata.message_type == MessageType.TRAIN
        assert RoundPlan.from_record(message.content["config"]) == strategy.round_plan(server_round)
    return messages


def reply(instruction: Message, arrays: dict[str, np.ndarray], examples: int, checksum: int | None = None,
          **metrics: float) -> Message:
    values: dict[str, int | float] = {"num-examples": examples, **metrics}
    if checksum is not None:
        values["mask_checksum"] = checksum
    content = RecordDict({"arrays": record(arrays), "metrics": MetricRecord(values)})
    return Message(content, reply_to=instruction)


def partition_of(instruction: Message) -> int:
    return {node: part for part, node in NODES.items()}[instruction.metadata.dst_node_id]


def sender_partition(reply_message: Message) -> int:
    return {node: part for part, node in NODES.items()}[reply_message.metadata.src_node_id]


def replies_for(strategy, messages: list[Message], sent: dict[str, np.ndarray],
                seed: int = 1) -> list[Message]:
    checksum = masks_checksum(strategy.round_masks) if strategy.round_masks is not None else None
    return [reply(message, client_arrays(sent, partition_of(message), seed), EXAMPLES[partition_of(message)],
                  checksum, train_loss=float(partition_of(message)))
            for message in messages]


def reference_mean(replies: list[Message], dtypes: dict[str, np.dtype]) -> dict[str, np.ndarray]:
    """Sample-size-weighted mean in partition order, in float64, back to each array's dtype."""
    ordered = sorted(replies, key=sender_partition)
    weights = np.array([float(m.content["metrics"]["num-examples"]) for m in ordered], dtype=np.float64)
    weights = weights / weights.sum()
    result = {}
    for key, dtype in dtypes.items():
        total = np.zeros(ordered[0].content["arrays"][key].shape, dtype=np.float64)
        for weight, message in zip(weights, ordered, strict=True):
            total += weight * message.content["arrays"][key].numpy().astype(np.float64)
        result[key] = total.astype(dtype) if np.issubdtype(dtype, np.floating) else np.rint(total).astype(dtype)
    return result


def equal_weight_mean(replies: list[Message], key: str) -> np.ndarray:
    return np.mean([m.content["arrays"][key].numpy().astype(np.float64) for m in replies], axis=0)


def assert_bitwise_equal(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes()


# -------------------------------------------------------------------- tests
def test_fedavg_is_the_sample_size_weighted_mean() -> None:
    strategy = make(FedAvg)
    sent = global_arrays()
    messages = configure(strategy, 1, sent)
    replies = replies_for(strategy, messages, sent)
    assert {m.metadata.src_node_id for m in replies} == set(NODES.values())

    arrays, metrics = strategy.aggregate_train(1, replies)

    result = as_numpy(arrays)
    expected = reference_mean(replies, {key: value.dtype for key, value in sent.items()})
    assert list(result) == list(sent)
    for key in sent:
        assert_bitwise_equal(result[key], expected[key])
    # Equal weights would be a different answer (10/30/60 examples).
    assert not np.allclose(result["w"], equal_weight_mean(replies, "w"), atol=1e-3)
    # Integer buffers are rounded, not truncated.
    np.testing.assert_array_equal(result["num_batches_tracked"], [3, 101, 8])
    assert metrics["num-examples"] == 100
    assert metrics["clients"] == 3 and metrics["failed_clients"] == 0
    assert metrics["train_loss"] == pytest.approx((0 * 10 + 1 * 30 + 2 * 60) / 100)


def test_aggregation_is_independent_of_reply_order_and_follows_partition_order() -> None:
    strategy = make(FedAvg)
    sent = global_arrays(with_f64=True)
    messages = configure(strategy, 1, sent)
    replies = replies_for(strategy, messages, sent)
    expected = reference_mean(replies, {key: value.dtype for key, value in sent.items()})

    # The partition-order reference differs in the last bits from other summation orders,
    # so these comparisons would notice any other order (arrival, node id).
    node_order = sorted(replies, key=lambda m: m.metadata.src_node_id)
    weights = np.array([EXAMPLES[sender_partition(m)] for m in node_order], dtype=np.float64)
    weights /= weights.sum()
    node_sum = np.zeros(997)
    for weight, message in zip(weights, node_order, strict=True):
        node_sum += weight * message.content["arrays"]["d"].numpy()
    assert node_sum.tobytes() != expected["d"].tobytes()

    outputs = []
    for permutation in itertools.permutations(replies):
        arrays, metrics = strategy.aggregate_train(1, list(permutation))
        result = as_numpy(arrays)
        for key in sent:
            assert_bitwise_equal(result[key], expected[key])
        outputs.append((b"".join(result[key].tobytes() for key in sent), dict(metrics)))
    assert all(output == outputs[0] for output in outputs)

    shuffled = list(replies)
    random.Random(7).shuffle(shuffled)
    arrays, _ = strategy.aggregate_train(1, shuffled)
    assert b"".join(as_numpy(arrays)[key].tobytes() for key in sent) == outputs[0][0]


def test_fedpfn_restores_anchors_bit_for_bit_and_averages_the_rest() -> None:
    strategy = make(FedPFN, mask=MASK, mask_per_round=True)
    sent = global_arrays()
    messages = configure(strategy, 1, sent)
    masks = {name: mask.numpy() for name, mask in strategy.round_masks.items()}
    assert set(masks) == set(SHAPES)
    for mask in masks.values():
        assert mask.any() and not mask.all()
    replies = replies_for(strategy, messages, sent)  # every client moved its anchors too

    arrays, metrics = strategy.aggregate_train(1, list(reversed(replies)))

    result = as_numpy(arrays)
    mean = reference_mean(replies, {key: value.dtype for key, value in sent.items()})
    for name, mask in masks.items():
        assert_bitwise_equal(result[name][mask], sent[name][mask])
        assert_bitwise_equal(result[name][~mask], mean[name][~mask])
        # Without the restore the anchors would have moved: the restore is what keeps them.
        assert np.all(mean[name][mask] != sent[name][mask])
    assert_bitwise_equal(result["num_batches_tracked"], mean["num_batches_tracked"])
    assert metrics["failed_clients"] == 0


def test_fedpnu_does_not_restore_anchors() -> None:
    strategy = make(FedPNU, mask=MASK, mask_per_round=True, pnu_split="epoch")
    sent = global_arrays()
    messages = configure(strategy, 1, sent)
    masks = {name: mask.numpy() for name, mask in strategy.round_masks.items()}
    replies = replies_for(strategy, messages, sent)

    arrays, _ = strategy.aggregate_train(1, replies)

    result = as_numpy(arrays)
    mean = reference_mean(replies, {key: value.dtype for key, value in sent.items()})
    for name, mask in masks.items():
        assert mask.any()
        assert_bitwise_equal(result[name], mean[name])
        assert np.all(result[name][mask] != sent[name][mask])


def test_checksum_mismatch_names_the_partition() -> None:
    strategy = make(FedPFN, mask=MASK, mask_per_round=True)
    sent = global_arrays()
    messages = configure(strategy, 1, sent)
    good = masks_checksum(strategy.round_masks)
    replies = [reply(m, client_arrays(sent, partition_of(m)), EXAMPLES[partition_of(m)],
                     good if partition_of(m) != 1 else good ^ 1)
               for m in messages]

    # Partition 1 runs on node 101: the error names the partition, not the node.
    with pytest.raises(MaskMismatchError, match=r"clients \[1\] built a mask"):
        strategy.aggregate_train(1, replies)
    with pytest.raises(MaskMismatchError, match=rf"the server expects {good}"):
        strategy.aggregate_train(1, list(reversed(replies)))
    # All correct: no error.
    strategy.aggregate_train(1, [reply(m, client_arrays(sent, partition_of(m)), EXAMPLES[partition_of(m)], good)
                                 for m in messages])


def test_failed_replies_are_counted_and_all_failing_raises() -> None:
    strategy = make(FedAvg)
    sent = global_arrays()
    messages = configure(strategy, 1, sent)
    replies = replies_for(strategy, messages, sent)
    failed = Message(Error(code=0, reason="out of memory"), reply_to=messages[1])
    assert failed.has_error() and failed.metadata.src_node_id == messages[1].metadata.dst_node_id
    survivors = [replies[0], replies[2]]

    arrays, metrics = strategy.aggregate_train(1, [replies[2], failed, replies[0]])

    expected = reference_mean(survivors, {key: value.dtype for key, value in sent.items()})
    for key, value in as_numpy(arrays).items():
        assert_bitwise_equal(value, expected[key])
    assert metrics["failed_clients"] == 1
    assert metrics["clients"] == 2
    assert metrics["num-examples"] == EXAMPLES[0] + EXAMPLES[2]

    all_failed = [Message(Error(code=0, reason=f"crash {i}"), reply_to=m) for i, m in enumerate(messages)]
    with pytest.raises(ClientFailureError, match="0 valid of 3 sampled clients, 3 failed"):
        strategy.aggregate_train(1, all_failed)
    with pytest.raises(ClientFailureError):
        strategy.aggregate_evaluate(1, all_failed)


def test_sampled_clients_without_a_reply_count_as_failed() -> None:
    """A reply missing at round_timeout (straggler, cut link) is a failed client; the round goes on."""
    strategy = make(FedAvg)
    sent = global_arrays()
    messages = configure(strategy, 1, sent)
    replies = replies_for(strategy, messages, sent)
    errored = Message(Error(code=0, reason="node unavailable"), reply_to=messages[1])

    arrays, metrics = strategy.aggregate_train(1, [replies[2]])  # partitions 0 and 1 never answered

    assert_bitwise_equal(as_numpy(arrays)["w"], reference_mean([replies[2]], {"w": np.dtype(np.float32)})["w"])
    assert (metrics["clients"], metrics["failed_clients"], metrics["rejected_clients"]) == (1, 2, 0)
    _, metrics = strategy.aggregate_train(1, [errored, replies[2]])  # one error reply, one missing
    assert (metrics["clients"], metrics["failed_clients"]) == (1, 2)
    _, metrics = strategy.aggregate_train(1, replies)
    assert metrics["failed_clients"] == 0
    strict = make(FedAvg, min_clients_fraction=1.0)
    configure(strict, 1, sent)
    with pytest.raises(ClientFailureError, match="2 valid of 3 sampled clients, 1 failed"):
        strict.aggregate_train(1, replies[:2])


def test_aggregate_client_metrics() -> None:
    records = [
        MetricRecord({"num-examples": 10, "train_loss": 1.0, "accuracy": 0.5, "anchor_drift": 0.4,
                      "mask_checksum": 123456789, "partition_id": 0}),
        MetricRecord({"num-examples": 30, "train_loss": 2.0, "accuracy": 0.7, "anchor_drift": 0.1,
                      "mask_checksum": 123456789, "partition_id": 1}),
        MetricRecord({"num-examples": 60, "train_loss": 4.0, "accuracy": 0.9, "anchor_drift": 0.2,
                      "mask_checksum": 123456789, "partition_id": 2}),
    ]
    merged = aggregate_client_metrics(records)

    assert set(merged) == {"num-examples", "train_loss", "accuracy", "anchor_drift"}
    assert merged["num-examples"] == 100
    assert merged["train_loss"] == pytest.approx((10 * 1.0 + 30 * 2.0 + 60 * 4.0) / 100, rel=1e-12)
    assert merged["accuracy"] == pytest.approx((10 * 0.5 + 30 * 0.7 + 60 * 0.9) / 100, rel=1e-12)
    assert merged["anchor_drift"] == 0.4  # the worst client, neither weighted nor plain mean
    # Evaluation metrics go through the same merge.
    strategy = make(FedAvg)
    instructions = [Message(RecordDict({}), dst_node_id=NODES[p], message_type=MessageType.EVALUATE) for p in NODES]
    evaluated = strategy.aggregate_evaluate(
        1, [Message(RecordDict({"metrics": rec}), reply_to=m) for rec, m in zip(records, instructions, strict=True)])
    assert dict(evaluated) == pytest.approx(merged, rel=1e-12)


def test_composed_fedadam_keeps_the_anchors_of_round_two() -> None:
    strategy = make(compose(FedPFN, "fedadam"), mask=MASK, mask_per_round=True, eta=0.1)
    sent1 = global_arrays(with_int=False)
    messages = configure(strategy, 1, sent1)
    masks1 = {name: mask.numpy().copy() for name, mask in strategy.round_masks.items()}
    arrays1, _ = strategy.aggregate_train(1, replies_for(strategy, messages, sent1, seed=1))
    round1 = as_numpy(arrays1)
    assert {key: value.dtype for key, value in round1.items()} == {key: value.dtype for key, value in sent1.items()}
    for name, mask in masks1.items():
        np.testing.assert_array_equal(round1[name][mask], sent1[name][mask])

    sent2 = {key: np.array(value) for key, value in round1.items()}
    messages = configure(strategy, 2, sent2)
    masks2 = {name: mask.numpy().copy() for name, mask in strategy.round_masks.items()}
    assert any((masks1[name] != masks2[name]).any() for name in masks2)
    arrays2, _ = strategy.aggregate_train(2, replies_for(strategy, messages, sent2, seed=2))
    round2 = as_numpy(arrays2)

    for name, mask in masks2.items():
        assert mask.any()
        # Round 2's anchors equal round 2's input, bit for bit ...
        assert_bitwise_equal(round2[name][mask], sent2[name][mask])
        # ... although FedAdam's first moment from round 1 is nonzero there and would move them.
        assert np.any(strategy.m_t[name][mask] != 0)
        # The free entries did move.
        assert np.all(round2[name][~mask] != sent2[name][~mask])


@pytest.mark.parametrize("plan", [
    RoundPlan(server_round=3, round_seed=2**62 + 5, schedule="full"),
    RoundPlan(server_round=1, round_seed=17, schedule="full", proximal_mu=0.25),
    RoundPlan(server_round=2, round_seed=9, schedule="pfn",
              mask=MaskPlan(seed=2**61 + 1, spec=MaskSpec(0.3, "weight"))),
    RoundPlan(server_round=4, round_seed=11, schedule="pnu", proximal_mu=0.01,
              mask=MaskPlan(seed=42, spec=MaskSpec(0.5, "neuron", scope=("fc1", "conv2"))),
              schedule_options={"pnu_split": "step", "repeats": 3, "scale": 0.5, "flag": True}),
], ids=["plain", "prox", "mask", "mask-scope-options"])
def test_round_plan_record_round_trip(plan: RoundPlan) -> None:
    encoded = plan.to_record()
    assert isinstance(encoded, ConfigRecord)
    decoded = RoundPlan.from_record(encoded)
    assert decoded == plan
    assert dict(decoded.schedule_options) == dict(plan.schedule_options)
    if plan.mask is not None and plan.mask.spec.scope is not None:
        assert isinstance(decoded.mask.spec.scope, tuple)
    # Also through a message's content, as the client receives it.
    message = Message(RecordDict({"config": encoded}), dst_node_id=1, message_type=MessageType.TRAIN)
    assert RoundPlan.from_record(message.content["config"]) == plan


class ScriptedGrid:
    """Answers train messages with ``train_replies`` and evaluate messages with successful replies."""

    def __init__(self, train_replies) -> None:
        self.train_replies = train_replies

    def send_and_receive(self, messages, timeout=None):
        if messages[0].metadata.message_type == MessageType.TRAIN:
            return self.train_replies(messages)
        return [Message(RecordDict({"metrics": MetricRecord({"num-examples": 5, "client_loss": 1.0})}),
                        reply_to=message) for message in messages]


def test_a_round_result_keeps_the_train_counts_when_evaluation_succeeds() -> None:
    from fedtna.fl.rounds import run_round

    strategy = make(FedAvg)
    strategy.fraction_evaluate = 1.0
    sent = global_arrays()

    def train_replies(messages):
        replies = replies_for(strategy, messages, sent)
        return [replies[0], Message(Error(code=0, reason="out of memory"), reply_to=messages[1]), replies[2]]

    result = run_round(strategy, ScriptedGrid(train_replies), record(sent), 1, timeout=1.0)

    assert result.server_round == 1 and result.failed_clients == 1 and result.rejected_clients == 0
    assert result.train_metrics["clients"] == 2
    assert result.evaluate_metrics == {"num-examples": 15.0, "client_loss": 1.0}
    assert not hasattr(strategy, "failed_clients") and not hasattr(strategy, "last_train_metrics")
