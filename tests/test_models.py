"""Shapes, parameter counts and config wiring of the model zoo."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from fedtna.errors import ConfigError
from fedtna.models import ModelConfigError, build_model, layer_names
from fedtna.models.cnn import CNN
from fedtna.models.mlp import MLP
from fedtna.models.resnet import ResNet20, ZeroPadShortcut
from fedtna.models.vgg import VGG

MODEL_CONFIG_DIR = Path(__file__).resolve().parents[1] / "fedtna" / "conf" / "model"
MNIST_SHAPE = (1, 28, 28)
CIFAR_SHAPE = (3, 32, 32)

ModelFactory = Callable[[tuple[int, int, int], int], nn.Module]

FACTORIES: dict[str, ModelFactory] = {
    "mlp": lambda shape, classes: MLP(shape, classes),
    "cnn": lambda shape, classes: CNN(shape, classes),
    "resnet20": lambda shape, classes: ResNet20(shape, classes),
    "vgg11": lambda shape, classes: VGG(shape, classes),
    "vgg11_thin_no_bn": lambda shape, classes: VGG(shape, classes, batch_norm=False, base_width_divisor=8),
}


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def linear_params(in_features: int, out_features: int) -> int:
    return in_features * out_features + out_features


def conv3x3_params(in_channels: int, out_channels: int, bias: bool = True) -> int:
    return in_channels * out_channels * 9 + (out_channels if bias else 0)


@pytest.mark.parametrize("shape", [MNIST_SHAPE, CIFAR_SHAPE, (3, 64, 64)], ids=["mnist", "cifar", "3x64x64"])
@pytest.mark.parametrize("model_name", sorted(FACTORIES))
def test_output_is_batch_by_classes(model_name: str, shape: tuple[int, int, int]) -> None:
    model = FACTORIES[model_name](shape, 7)
    logits = model(torch.randn(4, *shape))
    assert logits.shape == (4, 7)
    assert torch.isfinite(logits).all()


def test_cnn_parameter_count_on_cifar_matches_layer_shapes() -> None:
    expected = (
        conv3x3_params(3, 32)
        + conv3x3_params(32, 64)
        + conv3x3_params(64, 64)
        + linear_params(64 * 4 * 4, 64)
        + linear_params(64, 10)
    )
    assert expected == 122_570
    assert count_parameters(CNN(CIFAR_SHAPE, 10)) == expected


@pytest.mark.parametrize(("shape", "flat"), [(CIFAR_SHAPE, 1024), (MNIST_SHAPE, 576)])
def test_cnn_flatten_size_follows_input_shape(shape: tuple[int, int, int], flat: int) -> None:
    model = CNN(shape, 10)
    assert model.flat_features == flat
    assert model.fc1.in_features == flat


def test_cnn_width_multiplies_hidden_sizes() -> None:
    model = CNN(CIFAR_SHAPE, 10, width=2)
    assert (model.conv1.out_channels, model.conv3.out_channels, model.fc1.out_features) == (64, 128, 128)


def test_cnn_rejects_images_too_small_for_its_convs() -> None:
    with pytest.raises(ModelConfigError, match="17x17"):
        CNN((3, 17, 17), 10)
    CNN((3, 18, 18), 10)(torch.randn(1, 3, 18, 18))


def test_mlp_parameter_count_and_layer_names() -> None:
    model = MLP(MNIST_SHAPE, 10, hidden_sizes=[200, 200])
    assert count_parameters(model) == linear_params(784, 200) + linear_params(200, 200) + linear_params(200, 10)
    assert layer_names(model) == ["fc1", "fc2", "classifier"]


def test_resnet20_has_the_standard_option_a_parameter_count() -> None:
    assert count_parameters(ResNet20(CIFAR_SHAPE, 10)) == 269_722


def test_resnet_depth_sets_blocks_per_stage() -> None:
    model = ResNet20(CIFAR_SHAPE, 10, depth=32)
    convs = [module for module in model.modules() if isinstance(module, nn.Conv2d)]
    assert len(convs) == 31  # stem + 3 stages x 5 blocks x 2 convs
    assert len(model.layer1) == len(model.layer2) == len(model.layer3) == 5


def test_zero_pad_shortcut_has_no_parameters_and_pads_with_zeros() -> None:
    shortcut = ZeroPadShortcut(16, 32, stride=2)
    assert count_parameters(shortcut) == 0
    features = torch.randn(2, 16, 8, 8)
    output = shortcut(features)
    assert output.shape == (2, 32, 4, 4)
    assert torch.equal(output[:, 8:24], features[:, :, ::2, ::2])
    assert not output[:, :8].any() and not output[:, 24:].any()


def test_resnet_shortcuts_carry_no_parameters() -> None:
    model = ResNet20(CIFAR_SHAPE, 10)
    downsampling = [model.layer2[0].shortcut, model.layer3[0].shortcut]
    assert all(isinstance(shortcut, ZeroPadShortcut) for shortcut in downsampling)
    blocks = [block for stage in (model.layer1, model.layer2, model.layer3) for block in stage]
    assert all(count_parameters(block.shortcut) == 0 for block in blocks)


def test_vgg11_parameter_count_on_cifar() -> None:
    # The common CIFAR VGG-11-BN (conv biases kept) has 9,231,114 parameters; ours drops the
    # 64 + 128 + 2*256 + 4*512 = 2,752 conv biases that BatchNorm would cancel.
    assert count_parameters(VGG(CIFAR_SHAPE, 10)) == 9_231_114 - 2_752


def test_vgg_skips_pools_once_the_map_is_1x1() -> None:
    def pools(model: VGG) -> int:
        return sum(isinstance(module, nn.MaxPool2d) for module in model.features)

    assert pools(VGG(CIFAR_SHAPE, 10)) == 5  # 32 -> 1
    assert pools(VGG(MNIST_SHAPE, 10)) == 4  # 28 -> 14 -> 7 -> 3 -> 1
    assert VGG(MNIST_SHAPE, 10).classifier.in_features == 512


def test_vgg_base_width_divisor_thins_every_conv() -> None:
    model = VGG(CIFAR_SHAPE, 10, base_width_divisor=8)
    widths = [module.out_channels for module in model.features if isinstance(module, nn.Conv2d)]
    assert widths == [8, 16, 32, 32, 64, 64, 64, 64]


@pytest.mark.parametrize(
    ("build", "bad_value"),
    [(lambda: ResNet20(CIFAR_SHAPE, 10, depth=21), "21"), (lambda: VGG(CIFAR_SHAPE, 10, depth=12), "12")],
    ids=["resnet", "vgg"],
)
def test_bad_depth_names_the_value(build: Callable[[], nn.Module], bad_value: str) -> None:
    with pytest.raises(ValueError, match=f"got {bad_value}") as raised:
        build()
    assert isinstance(raised.value, ConfigError)


def test_bad_vgg_depth_lists_supported_depths() -> None:
    with pytest.raises(ValueError, match="11/13/16/19"):
        VGG(CIFAR_SHAPE, 10, depth=15)


@pytest.mark.parametrize("model_name", sorted(FACTORIES))
def test_same_seed_gives_identical_state_dict(model_name: str) -> None:
    states = []
    for _ in range(2):
        torch.manual_seed(1234)
        states.append(FACTORIES[model_name](CIFAR_SHAPE, 10).state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][key], states[1][key]) for key in states[0])


@pytest.mark.parametrize("model_name", ["resnet20", "vgg11"])
def test_batchnorm_buffers_are_in_the_state_dict(model_name: str) -> None:
    state = FACTORIES[model_name](CIFAR_SHAPE, 10).state_dict()
    assert any(key.endswith("running_mean") for key in state)
    assert any(key.endswith("running_var") for key in state)
    assert any(key.endswith("num_batches_tracked") for key in state)


@pytest.mark.parametrize("model_name", ["mlp", "cnn", "resnet20", "vgg11_thin_no_bn"])
def test_one_sgd_step_lowers_the_loss_on_its_batch(model_name: str) -> None:
    torch.manual_seed(0)
    model = FACTORIES[model_name](CIFAR_SHAPE, 10)
    images, labels = torch.randn(8, *CIFAR_SHAPE), torch.randint(0, 10, (8,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_before = nn.functional.cross_entropy(model(images), labels)
    loss_before.backward()
    optimizer.step()
    with torch.no_grad():
        loss_after = nn.functional.cross_entropy(model(images), labels)
    assert loss_after.item() < loss_before.item()


CONFIG_FILES = sorted(MODEL_CONFIG_DIR.glob("*.yaml"))


def test_the_four_model_configs_exist() -> None:
    assert {path.stem for path in CONFIG_FILES} >= {"mlp", "cnn", "resnet20", "vgg11"}


@pytest.mark.parametrize("config_path", CONFIG_FILES, ids=[path.stem for path in CONFIG_FILES])
@pytest.mark.parametrize("shape", [MNIST_SHAPE, CIFAR_SHAPE], ids=["mnist", "cifar"])
def test_build_model_from_each_yaml(config_path: Path, shape: tuple[int, int, int]) -> None:
    config = OmegaConf.load(config_path)
    assert config.name == config_path.stem
    model = build_model(config, list(shape), 10)
    assert model(torch.randn(4, *shape)).shape == (4, 10)


def test_build_model_passes_hyperparameters_and_accepts_plain_dicts() -> None:
    model = build_model(
        {"name": "mlp", "_target_": "fedtna.models.mlp.MLP", "hidden_sizes": [32]}, MNIST_SHAPE, 3
    )
    assert isinstance(model, MLP)
    assert layer_names(model) == ["fc1", "classifier"]
    assert model.fc1.out_features == 32


def test_build_model_surfaces_the_models_own_error() -> None:
    config = OmegaConf.create({"name": "resnet", "_target_": "fedtna.models.resnet.ResNet20", "depth": 19})
    with pytest.raises(ModelConfigError, match="got 19"):
        build_model(config, CIFAR_SHAPE, 10)


def test_build_model_without_target_or_with_unknown_target_fails_clearly() -> None:
    with pytest.raises(ConfigError, match="_target_"):
        build_model({"name": "mlp"}, MNIST_SHAPE, 10)
    with pytest.raises(ConfigError, match="no_such_module"):
        build_model({"_target_": "fedtna.models.no_such_module.Model"}, MNIST_SHAPE, 10)


def test_layer_names_lists_only_modules_owning_parameters() -> None:
    names = layer_names(ResNet20(CIFAR_SHAPE, 10))
    assert names[:2] == ["conv1", "bn1"]
    assert {"layer1.0.conv1", "layer2.0.bn2", "layer3.2.conv2", "fc"} <= set(names)
    assert not {"", "layer1", "layer1.0", "layer2.0.shortcut"} & set(names)
    assert len(names) == 19 + 19 + 1  # convs, batch norms, classifier
    assert layer_names(CNN(CIFAR_SHAPE, 10)) == ["conv1", "conv2", "conv3", "fc1", "fc2"]
