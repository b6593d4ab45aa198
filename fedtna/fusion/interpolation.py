"""Linear interpolation, LMC barriers, weight averaging and BatchNorm repair; no Flower import.

Everything works on ``state_dict``s so that the same code measures plain, TNA-PFN and
permuted models. A model is always *measured* the same way (BatchNorm statistics
recomputed on training data when the model has BatchNorm, then evaluated on the test
split), so the endpoints of an interpolation curve are exactly the endpoint accuracies
and a model's barrier with itself is exactly zero.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from fedtna.training import evaluate

StateDict = dict[str, torch.Tensor]


def interpolate_states(state_a: StateDict, state_b: StateDict, alpha: float) -> StateDict:
    """(1 - alpha) * A + alpha * B for float entries; integer buffers (BN step counters) come from A."""
    if state_a.keys() != state_b.keys():
        raise ValueError("cannot interpolate state dicts with different keys")
    mixed: StateDict = {}
    for name, tensor_a in state_a.items():
        tensor_b = state_b[name]
        if tensor_a.is_floating_point():
            mixed[name] = torch.lerp(tensor_a, tensor_b.to(tensor_a.dtype), float(alpha))
        else:
            mixed[name] = tensor_a.clone()
    return mixed


def average_states(states: Sequence[StateDict]) -> StateDict:
    """The uniform weight average of K models (multi-model fusion); integer buffers from the first."""
    if not states:
        raise ValueError("need at least one state dict to average")
    averaged: StateDict = {}
    for name, first in states[0].items():
        if first.is_floating_point():
            averaged[name] = torch.stack([state[name].to(first.dtype) for state in states]).mean(dim=0)
        else:
            averaged[name] = first.clone()
    return averaged


def batch_norm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers whose running statistics an interpolated model must recompute."""
    return [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def reset_batch_norm_statistics(model: nn.Module, inputs: torch.Tensor, batch_size: int) -> None:
    """Recompute BN running mean/var as the cumulative average over ``inputs`` (train mode, momentum=None).

    Interpolating running statistics is meaningless (the mean of variances is not the variance
    of the mean model's activations); without this repair BN models show spurious barriers.
    """
    layers = batch_norm_layers(model)
    if not layers:
        return
    saved_momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
    was_training = model.training
    model.train()
    device = next(model.parameters()).device
    try:
        for start in range(0, len(inputs), batch_size):
            model(inputs[start : start + batch_size].to(device))
    finally:
        for layer, momentum in zip(layers, saved_momenta, strict=True):
            layer.momentum = momentum
        model.train(was_training)


@dataclass(frozen=True)
class Measurement:
    """Test loss and accuracy of one model."""

    loss: float
    accuracy: float


class ModelMeter:
    """Measures state dicts in one scratch model: BN repair on fixed training inputs, then test metrics."""

    def __init__(
        self,
        template: nn.Module,
        test_inputs: torch.Tensor,
        test_labels: torch.Tensor,
        bn_inputs: torch.Tensor | None = None,
        bn_batch_size: int = 256,
        eval_batch_size: int = 1000,
    ) -> None:
        self.model = copy.deepcopy(template)
        self.test_inputs = test_inputs
        self.test_labels = test_labels
        self.bn_inputs = bn_inputs
        self.bn_batch_size = bn_batch_size
        self.eval_batch_size = eval_batch_size
        self.repairs_batch_norm = bool(batch_norm_layers(self.model))
        if self.repairs_batch_norm and (bn_inputs is None or len(bn_inputs) == 0):
            raise ValueError("a model with BatchNorm needs bn_inputs to recompute its statistics")

    def __call__(self, state: StateDict) -> Measurement:
        """Load ``state``, repair BN statistics if the model has BN, and evaluate on the test split."""
        self.model.load_state_dict(state)
        if self.repairs_batch_norm:
            assert self.bn_inputs is not None
            reset_batch_norm_statistics(self.model, self.bn_inputs, self.bn_batch_size)
        loss, accuracy = evaluate(self.model, self.test_inputs, self.test_labels, self.eval_batch_size)
        return Measurement(loss=loss, accuracy=accuracy)


@dataclass(frozen=True)
class Curve:
    """Test accuracy and loss along the line from model A (alpha=0) to model B (alpha=1)."""

    alphas: list[float]
    accuracies: list[float]
    losses: list[float]


def alpha_grid(num_points: int) -> list[float]:
    """``num_points`` evenly spaced alphas from 0 to 1 inclusive."""
    if num_points < 2:
        raise ValueError(f"num_points={num_points} must be at least 2 to include both endpoints")
    return [index / (num_points - 1) for index in range(num_points)]


def interpolation_curve(
    measure: Callable[[StateDict], Measurement],
    state_a: StateDict,
    state_b: StateDict,
    num_points: int,
    on_point: Callable[[], None] | None = None,
) -> Curve:
    """Measure every model on the segment A→B, endpoints included."""
    alphas = alpha_grid(num_points)
    accuracies, losses = [], []
    for alpha in alphas:
        measurement = measure(interpolate_states(state_a, state_b, alpha))
        accuracies.append(measurement.accuracy)
        losses.append(measurement.loss)
        if on_point is not None:
            on_point()
    return Curve(alphas=alphas, accuracies=accuracies, losses=losses)


@dataclass(frozen=True)
class Barrier:
    """The LMC barriers of one curve and the alphas at which they peak."""

    accuracy: float
    accuracy_relative: float
    accuracy_alpha: float
    loss: float
    loss_alpha: float


def _endpoint_line(alphas: Sequence[float], values: Sequence[float]) -> list[float]:
    """The straight line between the curve's endpoint values, at every alpha."""
    return [(1.0 - alpha) * values[0] + alpha * values[-1] for alpha in alphas]


def _all_finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(value) for value in values)


def accuracy_barrier(alphas: Sequence[float], accuracies: Sequence[float]) -> tuple[float, float, float]:
    """max_alpha [(1-a)Acc(A) + a Acc(B) - Acc(theta_a)]: absolute, relative to the line there, and alpha."""
    if not _all_finite(accuracies):
        return math.nan, math.nan, math.nan
    line = _endpoint_line(alphas, accuracies)
    gaps = [expected - measured for expected, measured in zip(line, accuracies, strict=True)]
    peak = max(range(len(gaps)), key=gaps.__getitem__)
    relative = gaps[peak] / line[peak] if line[peak] > 0 else 0.0
    return gaps[peak], relative, alphas[peak]


def loss_barrier(alphas: Sequence[float], losses: Sequence[float]) -> tuple[float, float]:
    """max_alpha [Loss(theta_a) - ((1-a)Loss(A) + a Loss(B))] and the alpha where it peaks.

    NaN if a loss is not finite.
    """
    if not _all_finite(losses):
        return math.nan, math.nan
    line = _endpoint_line(alphas, losses)
    excess = [measured - expected for expected, measured in zip(line, losses, strict=True)]
    peak = max(range(len(excess)), key=excess.__getitem__)
    return excess[peak], alphas[peak]


def curve_barrier(curve: Curve) -> Barrier:
    """Both barriers of one interpolation curve (endpoints are the curve's own first and last points)."""
    accuracy, relative, accuracy_alpha = accuracy_barrier(curve.alphas, curve.accuracies)
    loss, loss_alpha = loss_barrier(curve.alphas, curve.losses)
    return Barrier(accuracy=accuracy, accuracy_relative=relative, accuracy_alpha=accuracy_alpha,
                   loss=loss, loss_alpha=loss_alpha)


@dataclass(frozen=True)
class FusionResult:
    """The averaged model against the models it was averaged from."""

    fused_accuracy: float
    fused_loss: float
    mean_accuracy: float
    best_accuracy: float
    individual_accuracies: list[float]


def fuse(measure: Callable[[StateDict], Measurement], states: Sequence[StateDict],
         individual: Sequence[Measurement] | None = None) -> FusionResult:
    """Average all models and compare the fused accuracy with the mean and best individual."""
    individual = list(individual) if individual is not None else [measure(state) for state in states]
    fused = measure(average_states(states))
    accuracies = [measurement.accuracy for measurement in individual]
    return FusionResult(
        fused_accuracy=fused.accuracy,
        fused_loss=fused.loss,
        mean_accuracy=sum(accuracies) / len(accuracies),
        best_accuracy=max(accuracies),
        individual_accuracies=accuracies,
    )
