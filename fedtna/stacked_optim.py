"""torch.optim's SGD and Adam, on parameters stacked along a leading client dimension; no Flower import.

``fedtna.vectorized_training`` trains many clients as one stacked model. Each client needs
exactly the update ``torch.optim`` would give it alone, so these classes repeat torch's
single-tensor formulas (same operations in the same order) on the stacks. Row ``i`` of every
tensor is client ``i``; a step updates only the first ``rows`` clients (the ones still
training), and the state of the others stays untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from fedtna.training import OptimizerSettings

Tensors = Mapping[str, torch.Tensor]

ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, which fedtna uses
ADAM_EPS = 1e-8


class StackedSGD:
    """``torch.optim.SGD`` (momentum, dampening 0, Nesterov, L2 weight decay) per row of a stack."""

    def __init__(self, settings: OptimizerSettings) -> None:
        self.settings = settings
        self.momentum_buffers: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def step(self, params: Tensors, grads: Tensors, rows: int) -> None:
        """Update ``params`` (views of the first ``rows`` clients) in place with ``grads``."""
        settings = self.settings
        for name, param in params.items():
            grad = grads[name]
            if settings.weight_decay != 0:
                grad = grad.add(param, alpha=settings.weight_decay)
            if settings.momentum != 0:
                if name not in self.momentum_buffers:  # first step of the phase: buf = grad
                    buffer = grad.detach().clone()
                    self.momentum_buffers[name] = buffer
                else:
                    buffer = self.momentum_buffers[name][:rows]
                    buffer.mul_(settings.momentum).add_(grad, alpha=1)
                grad = grad.add(buffer, alpha=settings.momentum) if settings.nesterov else buffer
            param.add_(grad, alpha=-settings.lr)


class StackedAdam:
    """``torch.optim.Adam`` (default betas and eps, L2 weight decay, bias correction) per row of a stack.

    All rows of a step share the step count: every client of a phase starts it together.
    """

    def __init__(self, settings: OptimizerSettings) -> None:
        self.settings = settings
        self.step_count = 0
        self.exp_avgs: dict[str, torch.Tensor] = {}
        self.exp_avg_sqs: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def step(self, params: Tensors, grads: Tensors, rows: int) -> None:
        """Update ``params`` (views of the first ``rows`` clients) in place with ``grads``."""
        settings, (beta1, beta2) = self.settings, ADAM_BETAS
        self.step_count += 1
        step = float(self.step_count)  # torch keeps the step as a float tensor and reads it back
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = settings.lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        for name, param in params.items():
            grad = grads[name]
            if settings.weight_decay != 0:
                grad = grad.add(param, alpha=settings.weight_decay)
            if name not in self.exp_avgs:
                self.exp_avgs[name] = torch.zeros_like(param, memory_format=torch.preserve_format)
                self.exp_avg_sqs[name] = torch.zeros_like(param, memory_format=torch.preserve_format)
            exp_avg, exp_avg_sq = self.exp_avgs[name][:rows], self.exp_avg_sqs[name][:rows]
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(ADAM_EPS)
            param.addcdiv_(exp_avg, denom, value=-step_size)


StackedOptimizer = StackedSGD | StackedAdam
STACKED_OPTIMIZERS: dict[str, Callable[[OptimizerSettings], StackedOptimizer]] = {
    "sgd": StackedSGD,
    "adam": StackedAdam,
}


def make_stacked_optimizer(settings: OptimizerSettings) -> StackedOptimizer:
    """A fresh stacked optimizer (one per phase, as ``local_train`` makes one per phase)."""
    if settings.name not in STACKED_OPTIMIZERS:
        raise ValueError(f"optimizer {settings.name!r} has no stacked version; known: {sorted(STACKED_OPTIMIZERS)}")
    return STACKED_OPTIMIZERS[settings.name](settings)
