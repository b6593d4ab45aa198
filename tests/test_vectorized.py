"""The vectorized engine against ``local_train`` client by client, and against the ClientApp's replies.

Every client gets a different partition size, so step counts differ and the last batch of an
epoch is short (sizes 40, 70, 23, 100 at batch 16: 3, 5, 2, 7 steps per epoch, last batches 8,
6, 7, 4). Weights must agree within ``TOL`` (other kernels sum in another order), anchors and
every generator's final state exactly.

Adam is checked with lr=1e-3 on learnable data: with lr=0.01 on the CNN (random labels, a
rho=0.4 mask, FedProx), the sequential ``local_train`` itself moves by 4e-3 when half its weights
are nudged by one ulp (Adam divides gradients of ~1e-8 by sqrt(v) + 1e-8), so no engine whose
kernels sum in another order can promise 1e-4 there.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message
from torch import nn

from fedtna.augment import RandomCropFlip
from fedtna.config import RunConfig
from fedtna.errors import ConfigError
from fedtna.fl.client_app import partition_id_of
from fedtna.fl.experiment import initial_model
from fedtna.fl.faults import Fault, fault_for
from fedtna.fl.round_plan import MaskPlan, RoundPlan
from fedtna.fl.schedules import LocalWork, get_schedule
from fedtna.fl.strategies import build_strategy
from fedtna.fl.vectorized_round import train_messages_vectorized
from fedtna.masks import MaskSpec, complement, draw_fixed_masks
from fedtna.models.cnn import CNN
from fedtna.models.mlp import MLP
from fedtna.models.resnet import ResNet20
from fedtna.models.vgg import VGG
from fedtna.training import OptimizerSettings, Phase, TrainStats, local_train, steps_per_epoch
from fedtna.vectorized_training import ClientBatchJob, VectorizedResult, vectorized_local_train
from tests.conftest import InProcessGrid

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZES = (40, 70, 23, 100)
BATCH = 16
EPOCHS = 2
TOL = 1e-4
CHUNK = 3  # two chunks: the three largest clients, then the smallest
SHAPES = {"mlp": (1, 6, 6), "cnn": (3, 18, 18)}
NUM_CLASSES = 4
MASK = MaskPlan(seed=5, spec=MaskSpec(0.4, "weight"))

SGD = OptimizerSettings(name="sgd", lr=0.1, momentum=0.0)
MOMENTUM_WD = OptimizerSettings(name="sgd", lr=0.05, momentum=0.9, weight_decay=5e-3)
NESTEROV = OptimizerSettings(name="sgd", lr=0.05, momentum=0.9, weight_decay=5e-3, nesterov=True)
ADAM = OptimizerSettings(name="adam", lr=1e-3, weight_decay=5e-3)

Data = list[tuple[torch.Tensor, torch.Tensor]]
PhasesOf = Callable[[nn.Module, int], list[Phase]]


def problem(model_name: str) -> tuple[nn.Module, Data]:
    """A small model and learnable class-prototype data, one partition per size."""
    torch.manual_seed(0)
    shape = SHAPES[model_name]
    model = MLP(shape, NUM_CLASSES, hidden_sizes=(24, 16)) if model_name == "mlp" else CNN(shape, NUM_CLASSES)
    prototypes = torch.randn(NUM_CLASSES, *shape)
    data = []
    for size in SIZES:
        labels = torch.randint(0, NUM_CLASSES, (size,))
        data.append((prototypes[labels] + 0.5 * torch.randn(size, *shape), labels))
    return model, data


def schedule_phases(schedule: str) -> PhasesOf:
    """The real schedule's phases for a client of ``size`` examples (pnu: half the steps each way)."""
    plan = RoundPlan(server_round=1, round_seed=9, schedule=schedule, mask=None if schedule == "full" else MASK,
                     schedule_options={"pnu_split": "step"} if schedule == "pnu" else {})

    def phases(model: nn.Module, size: int) -> list[Phase]:
        return get_schedule(schedule)(model, plan, LocalWork(EPOCHS, steps_per_epoch(size, BATCH)))

    return phases


def generators() -> list[torch.Generator]:
    return [torch.Generator().manual_seed(100 + client) for client in range(len(SIZES))]


Outcome = tuple[dict[str, torch.Tensor], TrainStats, torch.Tensor]


def sequential(model: nn.Module, data: Data, phases_of: PhasesOf, settings: OptimizerSettings,
               proximal_mu: float = 0.0, transform: RandomCropFlip | None = None) -> list[Outcome]:
    """Each client alone through local_train: (state, stats, generator state afterwards)."""
    outcomes = []
    for (inputs, labels), generator in zip(data, generators(), strict=True):
        client = copy.deepcopy(model)
        stats = local_train(client, inputs, labels, phases_of(model, len(labels)), settings, BATCH, generator,
                            proximal_mu=proximal_mu, batch_transform=transform)
        outcomes.append((client.state_dict(), stats, generator.get_state()))
    return outcomes


def vectorized(model: nn.Module, data: Data, phases_of: PhasesOf, settings: OptimizerSettings,
               proximal_mu: float = 0.0, transform: RandomCropFlip | None = None,
               chunk: int = CHUNK) -> tuple[list[Outcome], VectorizedResult]:
    """All clients at once: the same outcomes, and the result with its batching cost."""
    gens = generators()
    jobs = [ClientBatchJob(inputs, labels, phases_of(model, len(labels)), generator)
            for (inputs, labels), generator in zip(data, gens, strict=True)]
    result = vectorized_local_train(model, jobs, settings, BATCH, proximal_mu=proximal_mu,
                                    batch_transform=transform, max_clients_per_chunk=chunk)
    outcomes = [(state, stats, generator.get_state())
                for state, stats, generator in zip(result.states, result.stats, gens, strict=True)]
    return outcomes, result


def max_difference(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> float:
    assert list(first) == list(second)
    return max(float((first[name] - second[name]).abs().max()) for name in first)


def assert_equivalent(expected: list[Outcome], actual: list[Outcome]) -> None:
    for (state, stats, draws), (ref_state, ref_stats, ref_draws) in zip(actual, expected, strict=True):
        assert max_difference(state, ref_state) <= TOL
        assert stats.num_steps == ref_stats.num_steps
        assert stats.mean_loss == pytest.approx(ref_stats.mean_loss, abs=1e-5)
        assert stats.anchor_drift == ref_stats.anchor_drift
        assert torch.equal(draws, ref_draws)  # same data order and augmentation draws


def check(model_name: str, schedule: str, settings: OptimizerSettings, proximal_mu: float = 0.0,
          transform: RandomCropFlip | None = None) -> tuple[nn.Module, list[Outcome]]:
    model, data = problem(model_name)
    start = copy.deepcopy(model.state_dict())
    phases_of = schedule_phases(schedule)
    expected = sequential(model, data, phases_of, settings, proximal_mu, transform)
    actual, _ = vectorized(model, data, phases_of, settings, proximal_mu, transform)
    assert all(torch.equal(start[name], value) for name, value in model.state_dict().items())  # model untouched
    assert_equivalent(expected, actual)
    return model, actual


@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
@pytest.mark.parametrize("settings", [SGD, MOMENTUM_WD, NESTEROV, ADAM], ids=["sgd", "momentum-wd", "nesterov", "adam"])
def test_optimizers_match_local_train(model_name: str, settings: OptimizerSettings) -> None:
    check(model_name, "full", settings)


@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_fedprox_matches_local_train(model_name: str) -> None:
    check(model_name, "full", MOMENTUM_WD, proximal_mu=0.5)


@pytest.mark.parametrize("settings", [NESTEROV, ADAM], ids=["nesterov", "adam"])
@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_fedpfn_mask_matches_and_anchors_are_bit_exact(model_name: str, settings: OptimizerSettings) -> None:
    model, actual = check(model_name, "pfn", settings, proximal_mu=0.1)
    masks = draw_fixed_masks(model.named_parameters(), MASK.seed, MASK.spec)
    start = model.state_dict()
    for state, stats, _ in actual:
        assert stats.anchor_drift == 0.0
        for name, mask in masks.items():
            assert torch.equal(state[name][mask], start[name][mask])
            assert not torch.equal(state[name][~mask], start[name][~mask])


@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_fedpnu_two_phases_match_and_second_anchors_are_bit_exact(model_name: str) -> None:
    model, actual = check(model_name, "pnu", MOMENTUM_WD)
    _, data = problem(model_name)
    pnu = schedule_phases("pnu")
    halfway, _ = vectorized(model, data, lambda m, size: pnu(m, size)[:1], MOMENTUM_WD)
    masks = draw_fixed_masks(model.named_parameters(), MASK.seed, MASK.spec)
    for (state, stats, _), (middle, _, _) in zip(actual, halfway, strict=True):
        assert stats.anchor_drift == 0.0
        for name, mask in masks.items():  # phase 2 fixes the complement at its value after phase 1
            assert torch.equal(state[name][~mask], middle[name][~mask])
            assert not torch.equal(state[name][mask], middle[name][mask])


def test_augmentation_draws_per_client_generator() -> None:
    check("cnn", "full", MOMENTUM_WD, transform=RandomCropFlip(padding=2))


def test_phases_in_another_order_and_per_client_masks() -> None:
    """Clients whose step ranking changes between phases, with masks that differ per client."""
    model, data = problem("mlp")
    steps = {40: (1, 5), 70: (4, 1), 23: (0, 3), 100: (3, 0)}

    def phases_of(m: nn.Module, size: int) -> list[Phase]:
        masks = draw_fixed_masks(m.named_parameters(), size, MaskSpec(0.3, "neuron"))
        return [Phase(masks, steps[size][0]), Phase(complement(masks) if size != 70 else None, steps[size][1])]

    expected = sequential(model, data, phases_of, NESTEROV, proximal_mu=0.1)
    actual, _ = vectorized(model, data, phases_of, NESTEROV, proximal_mu=0.1)
    assert_equivalent(expected, actual)


def test_finished_clients_stop_and_padding_waste_is_reported() -> None:
    model, data = problem("mlp")
    full = schedule_phases("full")
    actual, result = vectorized(model, data, full, MOMENTUM_WD, chunk=len(SIZES))
    # one chunk, rows sorted by steps 14, 10, 6, 4; a step pads every short batch to the widest one
    per_epoch = [steps_per_epoch(size, BATCH) for size in SIZES]
    assert result.cost.client_steps == result.cost.stacked_client_steps == EPOCHS * sum(per_epoch) == 34
    real = EPOCHS * sum(SIZES)
    # short batches beside a full one: 23 at steps 1 and 3 (7 of 16), 40 at 2 and 5 (8), 70 at 4 and 9 (6),
    # 100 at 6 (4); 100's short batch at step 13 is alone in the stack and needs no padding
    padded = 2 * (16 - 7) + 2 * (16 - 8) + 2 * (16 - 6) + (16 - 4)
    assert result.cost.padded_slots == padded
    assert result.cost.example_slots == real + padded
    assert result.padding_waste == pytest.approx(padded / (real + padded))
    # the smallest client (4 steps) matches local_train with 4 steps, not with a fifth
    inputs, labels = data[2]
    one_more = copy.deepcopy(model)
    local_train(one_more, inputs, labels, [Phase(None, EPOCHS * per_epoch[2] + 1)], MOMENTUM_WD, BATCH,
                generators()[2])
    expected = sequential(model, data, full, MOMENTUM_WD)
    assert max_difference(actual[2][0], expected[2][0]) <= TOL
    assert max_difference(actual[2][0], one_more.state_dict()) > 100 * TOL


class WithUnusedLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = MLP(SHAPES["mlp"], NUM_CLASSES, hidden_sizes=(8,))
        self.unused = nn.Linear(4, 4)  # never called: local_train's optimizer skips it (no decay, no prox)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


def test_parameters_without_gradient_stay_untouched() -> None:
    _, data = problem("mlp")
    torch.manual_seed(1)
    model = WithUnusedLayer()
    expected = sequential(model, data, schedule_phases("full"), MOMENTUM_WD, proximal_mu=0.1)
    actual, _ = vectorized(model, data, schedule_phases("full"), MOMENTUM_WD, proximal_mu=0.1)
    assert_equivalent(expected, actual)
    for state, _, _ in actual:
        assert torch.equal(state["unused.weight"], model.unused.weight.detach())


@pytest.mark.parametrize("chunk", [1, 2, 16])
def test_chunk_size_changes_nothing_but_the_batching(chunk: int) -> None:
    model, data = problem("mlp")
    expected = sequential(model, data, schedule_phases("pfn"), ADAM)
    actual, _ = vectorized(model, data, schedule_phases("pfn"), ADAM, chunk=chunk)
    assert_equivalent(expected, actual)


@pytest.mark.parametrize("model", [VGG((3, 32, 32), 10, depth=11, base_width_divisor=16),
                                   ResNet20((3, 32, 32), 10)], ids=["vgg", "resnet"])
def test_batchnorm_models_are_refused_in_one_line(model: nn.Module) -> None:
    job = ClientBatchJob(torch.zeros(4, 3, 32, 32), torch.zeros(4, dtype=torch.long), [Phase(None, 1)],
                         torch.Generator())
    with pytest.raises(ConfigError) as refused:
        vectorized_local_train(model, [job], SGD, BATCH)
    message = str(refused.value)
    assert "\n" not in message and type(model).__name__ in message and "BatchNorm" in message
    assert "simulation.backend=local or ray" in message


# --------------------------------------------------------------- Flower layer
def round_messages(config: RunConfig, server_round: int = 1) -> tuple[InProcessGrid, list[Message]]:
    """The strategy's real TRAIN messages of a round, and a grid whose ClientApp answers them one by one."""
    grid = InProcessGrid(config, config.num_clients)
    strategy = build_strategy(config)
    model = initial_model(config)
    strategy.attach(node_of_partition={part: 7000 + 13 * part for part in range(config.num_clients)},
                    parameter_shapes={name: value.shape for name, value in model.state_dict().items()})
    arrays = ArrayRecord(model.state_dict())
    return grid, list(strategy.configure_train(server_round, arrays, ConfigRecord({}), grid))


def by_node(replies: list[Message]) -> dict[int, Message]:
    """Replies by the node that sent them (one partition per node here; the grid reverses their order)."""
    return {reply.metadata.src_node_id: reply for reply in replies}


@pytest.mark.parametrize("overrides", [("strategy=fedavg", "optimizer=adam", "lr=0.001"),
                                       ("strategy=fedpnu", "local_epochs=2", "lr_decay=0.5", "weight_decay=0.001"),
                                       ("strategy=fedprox", "strategy.proximal_mu=0.1", "nesterov=true")],
                         ids=["fedavg-adam", "fedpnu", "fedprox"])
def test_round_replies_match_the_client_app(run_config_factory, overrides: tuple[str, ...]) -> None:
    config = run_config_factory("num_clients=3", "batch_size=50", *overrides)
    grid, messages = round_messages(config, server_round=2)
    expected = by_node(list(grid.send_and_receive(messages)))
    node_partition = lambda m: partition_id_of(grid.contexts[m.metadata.dst_node_id], m)  # noqa: E731
    replies = train_messages_vectorized(config, messages, node_partition, max_clients_per_chunk=2)
    assert len(replies) == len(messages)
    for message, reply in zip(messages, replies, strict=True):
        assert reply.metadata.src_node_id == message.metadata.dst_node_id
        sequential_reply = expected[message.metadata.dst_node_id]
        metrics, reference = dict(reply.content["metrics"]), dict(sequential_reply.content["metrics"])
        assert metrics.keys() == reference.keys()
        for key, value in reference.items():
            assert metrics[key] == (pytest.approx(value, abs=1e-5) if key == "train_loss" else value)
        state = reply.content["arrays"].to_torch_state_dict()
        assert max_difference(state, sequential_reply.content["arrays"].to_torch_state_dict()) <= TOL


def test_injected_crash_fails_only_that_client(run_config_factory) -> None:
    config = run_config_factory("faults.crash=0.5", "seed=1")
    grid, messages = round_messages(config)
    round_seed = RoundPlan.from_record(messages[0].content["config"]).round_seed
    crashing = {part for part in range(config.num_clients) if fault_for(round_seed, part, config.faults) is Fault.CRASH}
    assert 0 < len(crashing) < config.num_clients
    replies = train_messages_vectorized(config, messages, lambda m: int(m.content["config"]["partition-id"]))
    expected = by_node(list(grid.send_and_receive(messages)))
    for message, reply in zip(messages, replies, strict=True):
        partition = int(message.content["config"]["partition-id"])
        assert reply.has_error() == (partition in crashing) == expected[message.metadata.dst_node_id].has_error()
        if reply.has_error():
            assert "InjectedCrash" in reply.error.reason and str(partition) in reply.error.reason
        else:
            assert reply.content["metrics"]["partition_id"] == partition


def test_messages_of_different_rounds_are_refused(run_config_factory) -> None:
    config = run_config_factory()
    _, first = round_messages(config, server_round=1)
    _, second = round_messages(config, server_round=2)
    with pytest.raises(ValueError, match="same round plan"):
        train_messages_vectorized(config, [first[0], second[1]], lambda m: int(m.content["config"]["partition-id"]))
