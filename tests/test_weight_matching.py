"""Weight matching recovers a known permutation exactly, and permuting never changes the function."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fedtna.errors import ConfigError
from fedtna.fusion.weight_matching import (
    align_to_first,
    apply_permutations,
    permutation_spec,
    supports,
    weight_matching,
)
from fedtna.models.cnn import CNN
from fedtna.models.mlp import MLP
from fedtna.models.resnet import ResNet20
from fedtna.models.vgg import VGG
from fedtna.training import OptimizerSettings, Phase, evaluate, local_train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def random_permutations(spec, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randperm(size, generator=generator) for name, size in spec.sizes().items()}


def trained_mlp() -> MLP:
    torch.manual_seed(0)
    model = MLP((1, 6, 6), 4, hidden_sizes=(24, 16))
    inputs = torch.randn(128, 1, 6, 6)
    labels = inputs.flatten(1)[:, :4].argmax(dim=1)
    local_train(model, inputs, labels, [Phase(None, 30)], OptimizerSettings(lr=0.1, momentum=0.9), 32,
                torch.Generator().manual_seed(0))
    return model


def small_cnn() -> CNN:
    torch.manual_seed(1)
    return CNN((1, 28, 28), 10)


def _randomise_batch_norm(model: nn.Module) -> nn.Module:
    """BatchNorm vectors away from their 1/0 init, so a wrong permutation of them would show."""
    generator = torch.Generator().manual_seed(5)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            for tensor in (module.weight.data, module.bias.data, module.running_mean):
                tensor.copy_(torch.randn(tensor.shape, generator=generator))
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    return model.eval()


def small_vgg() -> VGG:
    torch.manual_seed(3)
    return _randomise_batch_norm(VGG((1, 28, 28), 10, depth=11, base_width_divisor=16))


def small_resnet() -> ResNet20:
    torch.manual_seed(4)
    return _randomise_batch_norm(ResNet20((3, 8, 8), 10))


SHAPES = {MLP: (1, 6, 6), CNN: (1, 28, 28), VGG: (1, 28, 28), ResNet20: (3, 8, 8)}


@pytest.mark.parametrize("make_model", [trained_mlp, small_cnn, small_vgg, small_resnet],
                         ids=["mlp", "cnn", "vgg11", "resnet20"])
def test_matching_recovers_a_known_permutation_exactly(make_model) -> None:
    model = make_model()
    spec = permutation_spec(model)
    original = state_of(model)
    inputs = torch.randn(64, *SHAPES[type(model)])
    labels = torch.randint(0, 4, (64,))

    scrambled = apply_permutations(spec, random_permutations(spec, seed=7), original)
    assert any(not torch.equal(scrambled[name], original[name]) for name in spec.axes)
    scrambled_model = make_model().eval()
    scrambled_model.load_state_dict(scrambled)
    with torch.no_grad():
        # same function, other sum order
        assert torch.allclose(scrambled_model(inputs), model(inputs), rtol=1e-4, atol=1e-4)

    perms = weight_matching(spec, original, scrambled)
    recovered = apply_permutations(spec, perms, scrambled)
    for name in original:
        assert torch.equal(recovered[name], original[name]), name
    recovered_model = make_model().eval()
    recovered_model.load_state_dict(recovered)
    assert evaluate(recovered_model, inputs, labels) == evaluate(model, inputs, labels)


def test_matching_brings_independent_models_closer() -> None:
    torch.manual_seed(2)
    model_a, model_b = MLP((1, 6, 6), 4, hidden_sizes=(24, 16)), MLP((1, 6, 6), 4, hidden_sizes=(24, 16))
    state_a, state_b = state_of(model_a), state_of(model_b)
    aligned = align_to_first(model_a, [state_a, state_b])[1]

    def distance(state: dict[str, torch.Tensor]) -> float:
        return sum(float((state[name] - state_a[name]).pow(2).sum()) for name in state_a)

    assert distance(aligned) < distance(state_b)
    inputs = torch.randn(32, 1, 6, 6)
    aligned_model = MLP((1, 6, 6), 4, hidden_sizes=(24, 16))
    aligned_model.load_state_dict(aligned)
    with torch.no_grad():
        assert torch.allclose(aligned_model(inputs), model_b(inputs), atol=1e-5)


def test_cnn_spec_moves_fc1_inputs_in_channel_blocks() -> None:
    spec = permutation_spec(small_cnn())
    assert spec.view_shapes["fc1.weight"] == (64, 64, 9)
    assert spec.sizes() == {"P_conv1": 32, "P_conv2": 64, "P_conv3": 64, "P_fc1": 64}


def test_resnet_stream_keeps_carried_channels_in_the_previous_stage_order() -> None:
    spec = permutation_spec(small_resnet())
    sizes = spec.sizes()
    assert (sizes["P_stream1"], sizes["P_pad2"], sizes["P_pad3"]) == (16, 16, 32)
    assert sizes["P_layer3.2"] == 64 and len(sizes) == 3 + 9
    ((carried, positions), (padded, pad_positions)) = spec.axes["layer2.0.conv2.weight"][0]
    assert (carried, positions) == ("P_stream1", tuple(range(8, 24)))
    assert padded == "P_pad2" and pad_positions == (*range(8), *range(24, 32))
    assert "layer1.0.bn1.running_mean" in spec.axes and "layer1.0.bn1.running_mean" not in spec.matched


def test_unsupported_models_raise_a_config_error() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    assert not supports(model) and supports(small_cnn()) and supports(small_resnet())
    with pytest.raises(ConfigError, match="Sequential"):
        permutation_spec(model)
