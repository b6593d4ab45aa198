"""Model zoo: every model is one module plus one YAML in conf/model, found through `_target_`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from fedtna.config.targets import TargetSpec
from fedtna.models.validation import ModelConfigError

__all__ = ["ModelConfigError", "build_model", "layer_names"]


def build_model(spec: TargetSpec | Mapping[str, Any], input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """Instantiate the class named by the spec's `_target_` with its hyperparameters.

    The arguments are bound to the class's signature first, so a wrong key is one clear line;
    a bad value surfaces as the model's own ModelConfigError.
    """
    spec = TargetSpec.coerce("model", spec)
    model = spec.call(input_shape=tuple(int(size) for size in input_shape), num_classes=int(num_classes))
    if not isinstance(model, nn.Module):
        raise ModelConfigError(f"model._target_={spec.target!r} built a {type(model).__name__}, not a torch nn.Module")
    return model


def layer_names(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters directly, e.g. 'conv1', 'layer1.0.bn1', 'fc'."""
    return [
        name
        for name, module in model.named_modules()
        if name and next(module.parameters(recurse=False), None) is not None
    ]
