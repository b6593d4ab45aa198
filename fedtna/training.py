"""Local training and evaluation loops, with anchor masks; no Flower import.

Training is a sequence of *phases*. Each phase names the weights it keeps fixed
(or none) and how many optimizer steps it takes. Plain training is one phase
without a mask, FedPFN one phase with the round's mask, FedPNU two phases (mask,
then its complement). Each phase gets a fresh optimizer, so optimizer state from a
phase never leaks into the weights the next phase unfreezes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fedtna.augment import BatchTransform
from fedtna.masks import AnchorGuard, FixedMasks


@dataclass(frozen=True)
class Phase:
    """Train ``num_steps`` optimizer steps with ``fixed_masks`` held (None = all train)."""

    fixed_masks: FixedMasks | None
    num_steps: int


@dataclass(frozen=True)
class OptimizerSettings:
    """The client optimizer and its hyperparameters."""

    name: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False


@dataclass(frozen=True)
class TrainStats:
    """What one local training run reports."""

    mean_loss: float
    num_steps: int
    anchor_drift: float


def _sgd(parameters: list[nn.Parameter], settings: OptimizerSettings) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        parameters,
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
        nesterov=settings.nesterov,
    )


def _adam(parameters: list[nn.Parameter], settings: OptimizerSettings) -> torch.optim.Optimizer:
    return torch.optim.Adam(parameters, lr=settings.lr, weight_decay=settings.weight_decay)


OPTIMIZERS: dict[str, Callable[[list[nn.Parameter], OptimizerSettings], torch.optim.Optimizer]] = {
    "sgd": _sgd,
    "adam": _adam,
}


def make_optimizer(model: nn.Module, settings: OptimizerSettings) -> torch.optim.Optimizer:
    """Build the configured optimizer over all parameters of ``model`` (names checked in fedtna.config.checks)."""
    return OPTIMIZERS[settings.name](list(model.parameters()), settings)


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Batches in one pass; a trailing batch of one example is dropped (BatchNorm needs two)."""
    full, remainder = divmod(num_examples, batch_size)
    return max(1, full + (1 if remainder > 1 else 0))


def batch_indices(num_examples: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless mini-batch indices, reshuffled with ``generator`` at every epoch."""
    per_epoch = steps_per_epoch(num_examples, batch_size)
    while True:
        order = torch.randperm(num_examples, generator=generator)
        for step in range(per_epoch):
            yield order[step * batch_size : (step + 1) * batch_size]


def _add_proximal_gradient(
    parameters: Sequence[torch.Tensor], reference: Sequence[torch.Tensor], proximal_mu: float
) -> None:
    """Add the gradient of mu/2 * ||w - w_ref||^2 to every parameter's gradient.

    A parameter the backward pass never reached has no gradient; the optimizer skips it, so it
    stays at its reference value and has no proximal gradient either.
    """
    grads, weights, anchors = [], [], []
    for parameter, anchor in zip(parameters, reference, strict=True):
        if parameter.grad is not None:
            grads.append(parameter.grad)
            weights.append(parameter.detach())
            anchors.append(anchor)
    if grads:
        torch._foreach_add_(grads, torch._foreach_sub(weights, anchors), alpha=proximal_mu)


def local_train(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    phases: list[Phase],
    optimizer_settings: OptimizerSettings,
    batch_size: int,
    generator: torch.Generator,
    proximal_mu: float = 0.0,
    batch_transform: BatchTransform | None = None,
) -> TrainStats:
    """Run the phases on (inputs, labels); fixed weights stay bit-exact in every phase.

    The proximal reference is the model as it enters this function (the global
    model in federated learning). ``batch_transform`` (data augmentation, see
    ``fedtna.augment``) maps each mini-batch of inputs on the training device and draws
    its random numbers from ``generator``; None leaves batches and the draws untouched.
    """
    device = next(model.parameters()).device
    inputs, labels = inputs.to(device), labels.to(device)
    parameters = list(model.parameters())
    reference = [p.detach().clone() for p in parameters] if proximal_mu > 0 else []
    batches = batch_indices(len(labels), batch_size, generator)
    model.train()
    total_loss = torch.zeros((), device=device)
    total_steps = 0
    drift = 0.0
    for phase in phases:
        if phase.num_steps <= 0:
            continue
        optimizer = make_optimizer(model, optimizer_settings)
        guard = AnchorGuard(model, phase.fixed_masks) if phase.fixed_masks else None
        for _ in range(phase.num_steps):
            index = next(batches).to(device)
            optimizer.zero_grad(set_to_none=False)
            batch = inputs[index]
            if batch_transform is not None:
                batch = batch_transform(batch, generator)
            loss = F.cross_entropy(model(batch), labels[index])
            loss.backward()
            if proximal_mu > 0:
                _add_proximal_gradient(parameters, reference, proximal_mu)
            optimizer.step()
            if guard is not None:
                guard.restore()
            total_loss += loss.detach()
        total_steps += phase.num_steps
        if guard is not None:
            drift = max(drift, guard.max_drift())
    mean_loss = float(total_loss) / total_steps if total_steps else math.nan
    return TrainStats(mean_loss=mean_loss, num_steps=total_steps, anchor_drift=drift)


@torch.no_grad()
def evaluate(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000
) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on (inputs, labels)."""
    device = next(model.parameters()).device
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(labels), batch_size):
        batch_x = inputs[start : start + batch_size].to(device)
        batch_y = labels[start : start + batch_size].to(device)
        logits = model(batch_x)
        loss_sum += float(F.cross_entropy(logits, batch_y, reduction="sum"))
        correct += int((logits.argmax(dim=1) == batch_y).sum())
    count = max(1, len(labels))
    return loss_sum / count, correct / count
