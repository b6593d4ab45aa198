"""Interpolation, barriers, averaging, BN repair, and the anchors of the LMC training modes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fedtna.fusion.interpolation import (
    ModelMeter,
    accuracy_barrier,
    average_states,
    curve_barrier,
    fuse,
    interpolate_states,
    interpolation_curve,
    loss_barrier,
    reset_batch_norm_statistics,
)
from fedtna.fusion.training import mode_masks, own_initial_states, train_models
from fedtna.models.mlp import MLP
from fedtna.training import OptimizerSettings, Phase, evaluate, local_train

INPUT_SHAPE = (1, 4, 4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_data(seed: int = 0, count: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(count, *INPUT_SHAPE, generator=generator)
    labels = (inputs.flatten(1)[:, :3].argmax(dim=1)).long()  # a learnable 3-class rule
    return inputs, labels


def trained_mlp(seed: int, inputs: torch.Tensor, labels: torch.Tensor) -> MLP:
    torch.manual_seed(seed)
    model = MLP(INPUT_SHAPE, 3, hidden_sizes=(32,))
    local_train(model, inputs, labels, [Phase(None, 60)], OptimizerSettings(lr=0.1, momentum=0.9), 32,
                torch.Generator().manual_seed(seed))
    return model


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def test_barrier_of_a_model_with_itself_is_zero() -> None:
    inputs, labels = toy_data()
    model = trained_mlp(0, inputs, labels)
    meter = ModelMeter(model, inputs, labels)
    curve = interpolation_curve(meter, state_of(model), state_of(model), 7)
    barrier = curve_barrier(curve)
    assert len(set(curve.accuracies)) == 1 and len(set(curve.losses)) == 1  # lerp(w, w, a) is w: same computation
    # the endpoint line (1 - a) L + a L may differ from L in the last bit: compare with a tolerance
    assert barrier.accuracy == pytest.approx(0.0, abs=1e-12) and barrier.loss == pytest.approx(0.0, abs=1e-12)
    assert barrier.accuracy_relative == pytest.approx(0.0, abs=1e-12)


def test_curve_endpoints_reproduce_endpoint_metrics_and_middle_differs() -> None:
    inputs, labels = toy_data()
    model_a, model_b = trained_mlp(1, inputs, labels), trained_mlp(2, inputs, labels)
    meter = ModelMeter(model_a, inputs, labels)
    curve = interpolation_curve(meter, state_of(model_a), state_of(model_b), 5)
    loss_a, accuracy_a = evaluate(model_a, inputs, labels)
    loss_b, accuracy_b = evaluate(model_b, inputs, labels)
    assert (curve.accuracies[0], curve.losses[0]) == (accuracy_a, loss_a)
    assert (curve.accuracies[-1], curve.losses[-1]) == (accuracy_b, loss_b)
    assert curve.losses[2] != pytest.approx((loss_a + loss_b) / 2)
    assert curve.alphas == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_barrier_formulas_on_a_known_curve() -> None:
    alphas = [0.0, 0.5, 1.0]
    absolute, relative, alpha = accuracy_barrier(alphas, [0.9, 0.5, 0.8])
    assert absolute == pytest.approx(0.35) and relative == pytest.approx(0.35 / 0.85) and alpha == 0.5
    value, loss_alpha = loss_barrier(alphas, [0.2, 1.0, 0.4])
    assert value == pytest.approx(0.7) and loss_alpha == 0.5
    assert accuracy_barrier(alphas, [0.5, 0.9, 0.7])[0] == 0.0  # a bump above the line is no barrier


def test_interpolation_and_average_of_states() -> None:
    state_a = {"w": torch.tensor([0.0, 2.0]), "count": torch.tensor(3)}
    state_b = {"w": torch.tensor([4.0, 2.0]), "count": torch.tensor(9)}
    assert torch.equal(interpolate_states(state_a, state_b, 0.25)["w"], torch.tensor([1.0, 2.0]))
    assert torch.equal(interpolate_states(state_a, state_b, 1.0)["w"], state_b["w"])
    assert int(interpolate_states(state_a, state_b, 0.5)["count"]) == 3
    state_c = {"w": torch.tensor([2.0, 8.0]), "count": torch.tensor(1)}
    averaged = average_states([state_a, state_b, state_c])
    assert torch.equal(averaged["w"], torch.tensor([2.0, 4.0])) and int(averaged["count"]) == 3


def test_fusion_of_identical_models_equals_each_model() -> None:
    inputs, labels = toy_data()
    model = trained_mlp(3, inputs, labels)
    meter = ModelMeter(model, inputs, labels)
    result = fuse(meter, [state_of(model)] * 3)
    assert result.mean_accuracy == result.best_accuracy  # the same model measured three times
    # the mean of three equal float32 tensors may be off by one ulp: allow one flipped prediction of 256
    assert result.fused_accuracy == pytest.approx(result.best_accuracy, abs=1 / len(labels) + 1e-12)


def bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def test_bn_reset_recomputes_running_statistics_as_a_cumulative_average() -> None:
    model = bn_model()
    inputs = toy_data()[0] * 3 + 1
    bn = model[2]
    bn.running_mean.fill_(5.0)
    bn.running_var.fill_(7.0)
    reset_batch_norm_statistics(model, inputs, batch_size=64)
    with torch.no_grad():
        activations = model[1](model[0](inputs))
    assert torch.allclose(bn.running_mean, activations.mean(dim=0), atol=1e-5)
    assert not torch.allclose(bn.running_var, torch.full_like(bn.running_var, 7.0))
    assert bn.momentum == 0.1 and int(bn.num_batches_tracked) == 4


def test_meter_repairs_batch_norm_of_an_interpolated_model() -> None:
    inputs, labels = toy_data()
    model = bn_model()
    local_train(model, inputs, labels, [Phase(None, 40)], OptimizerSettings(lr=0.1, momentum=0.9), 32,
                torch.Generator().manual_seed(0))
    broken = state_of(model)
    broken["2.running_mean"] = broken["2.running_mean"] + 100.0
    repaired = ModelMeter(model, inputs, labels, bn_inputs=inputs)(broken)
    unrepaired_model = bn_model()
    unrepaired_model.load_state_dict(broken)
    assert repaired.loss < evaluate(unrepaired_model, inputs, labels)[0]
    with pytest.raises(ValueError):
        ModelMeter(model, inputs, labels, bn_inputs=None)


def lmc_settings(*overrides: str):
    """The real lmc.yaml with this file's small settings on top."""
    from omegaconf import OmegaConf

    from fedtna.config import parse_lmc_config
    from fedtna.config.entry import compose_config

    cfg = compose_config("lmc", ["seed=5", "epochs=3", "batch_size=32", "lr=0.1", "weight_decay=5e-3",
                                 "num_points=3", "bn_reset_batches=2", "eval_batch_size=100", *overrides])
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = "unused"
    return parse_lmc_config(cfg)


def build_mlp() -> nn.Module:
    return MLP(INPUT_SHAPE, 3, hidden_sizes=(16, 16))


def train_kind(training: str, settings) -> list:
    inputs, labels = toy_data()
    parts = [torch.arange(len(labels)).numpy()] * settings.num_models
    return train_models(training, settings, build_mlp, inputs, labels, parts, torch.device("cpu"))


def test_tna_pfn_anchors_equal_the_shared_init_bit_exact_and_trainable_entries_are_own() -> None:
    settings = lmc_settings()
    shared, own = own_initial_states(settings, build_mlp)
    masks = mode_masks(settings, build_mlp())
    models = train_kind("tna_pfn", settings)
    for name, mask in masks.items():
        assert mask.any() and (~mask).any()
        for k, model in enumerate(models):
            assert model.state[name][mask].numpy().tobytes() == shared[name][mask].numpy().tobytes()
            assert not torch.equal(model.state[name][~mask], own[k][name][~mask])
        assert not torch.equal(own[0][name][~mask], own[1][name][~mask])
    assert all(model.anchor_drift == 0.0 for model in models)


def test_prune_init_keeps_masked_weights_at_zero_and_vanilla_moves_them() -> None:
    settings = lmc_settings()
    masks = mode_masks(settings, build_mlp())
    pruned, vanilla = train_kind("prune_init", settings), train_kind("vanilla", settings)
    for name, mask in masks.items():
        for model in pruned:
            assert torch.count_nonzero(model.state[name][mask]) == 0
            assert torch.count_nonzero(model.state[name][~mask]) > 0
        assert torch.count_nonzero(vanilla[0].state[name][mask]) > 0


def test_shared_init_gives_every_model_the_same_start() -> None:
    shared, own = own_initial_states(lmc_settings("init=shared"), build_mlp)
    assert all(torch.equal(own[1][name], shared[name]) for name in shared)
    _, independent = own_initial_states(lmc_settings(), build_mlp)
    assert not torch.equal(independent[0]["fc1.weight"], independent[1]["fc1.weight"])


def test_data_parts_same_disjoint_and_dirichlet() -> None:
    from fedtna.fusion.training import data_parts

    labels = torch.arange(300).remainder(3).numpy()
    same = data_parts(lmc_settings("num_models=3"), labels)
    assert all(len(part) == 300 for part in same)
    disjoint = data_parts(lmc_settings("num_models=3", "data_split=disjoint"), labels)
    assert [len(part) for part in disjoint] == [100, 100, 100]
    assert sorted(index for part in disjoint for index in part) == list(range(300))
    skewed = data_parts(lmc_settings("num_models=3", "data_split=dirichlet", "partition.alpha=0.1",
                                     "partition.min_partition_size=5"), labels)
    assert sorted(index for part in skewed for index in part) == list(range(300))
    assert len({len(part) for part in skewed}) > 1  # non-IID parts differ in size


@pytest.mark.parametrize("model", [["model=vgg11", "model.base_width_divisor=16"], ["model=resnet20"]],
                         ids=["vgg11", "resnet20"])
def test_weight_matching_runs_end_to_end_on_batch_norm_models(tmp_path, model: list[str]) -> None:
    """VGG-11 and ResNet-20 (BatchNorm, residual stream) get the post-hoc baseline too."""
    import json

    from omegaconf import OmegaConf

    from fedtna.config import parse_lmc_config
    from fedtna.config.entry import compose_config
    from fedtna.fusion.cli import run_lmc

    cfg = compose_config("lmc", ["dataset=synthetic", "dataset.num_train=128", "dataset.num_test=64",
                                 "dataset.height=8", "dataset.width=8", "epochs=1", "batch_size=32",
                                 "num_points=3", "bn_reset_batches=2", "progress=false",
                                 "modes=[vanilla,weight_matching]", *model])
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = str(tmp_path)
    result = run_lmc(parse_lmc_config(cfg))
    assert set(result["modes"]) == {"vanilla", "weight_matching"}
    matched = result["modes"]["weight_matching"]["summary"]
    vanilla = result["modes"]["vanilla"]["summary"]
    # permuting keeps the function (up to summation order: allow one of the 64 test images to flip)
    assert matched["endpoint_accuracy_mean"] == pytest.approx(vanilla["endpoint_accuracy_mean"], abs=1 / 64 + 1e-9)
    assert json.loads((tmp_path / "lmc.json").read_text())["modes"].keys() == result["modes"].keys()
