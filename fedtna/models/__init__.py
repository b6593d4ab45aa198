"""Model zoo: every model is one module plus one YAML in conf/model, found through `_target_`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from torch import nn

from fedtna.models.validation import ModelConfigError

__all__ = ["ModelConfigError", "build_model", "layer_names"]

# Keys of a model config that describe it rather than being constructor arguments.
DESCRIPTIVE_KEYS = ("name",)


def _plain_config(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Copy the config into plain Python containers, so models see lists and not ListConfigs."""
    if isinstance(model_cfg, DictConfig):
        container = OmegaConf.to_container(model_cfg, resolve=True)
        assert isinstance(container, dict)
        return container
    return dict(model_cfg)


def build_model(model_cfg: Mapping[str, Any], input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """Instantiate the class named by `_target_` with the config's hyperparameters.

    The class is resolved and called directly rather than through hydra.utils.instantiate, so a
    bad hyperparameter surfaces as the model's own ModelConfigError instead of a wrapped
    InstantiationException.
    """
    config = _plain_config(model_cfg)
    for key in DESCRIPTIVE_KEYS:
        config.pop(key, None)
    target = config.pop("_target_", None)
    if not target:
        raise ModelConfigError(f"model config needs a '_target_' naming the model class, got keys {sorted(model_cfg)}")
    try:
        model_class = get_class(target)
    except Exception as error:  # hydra raises several types for unknown modules and attributes
        raise ModelConfigError(f"model _target_ {target!r} cannot be imported: {error}") from error
    model = model_class(input_shape=tuple(int(size) for size in input_shape), num_classes=int(num_classes), **config)
    if not isinstance(model, nn.Module):
        raise ModelConfigError(f"model _target_ {target!r} built a {type(model).__name__}, not a torch nn.Module")
    return model


def layer_names(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters directly, e.g. 'conv1', 'layer1.0.bn1', 'fc'."""
    return [
        name
        for name, module in model.named_modules()
        if name and next(module.parameters(recurse=False), None) is not None
    ]
