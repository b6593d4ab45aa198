"""Local training of many clients at once, as one batched model (torch.func); no Flower import.

``vectorized_local_train`` gives every client what ``fedtna.training.local_train`` would give
it alone: its own data order and augmentation (drawn from its own generator, in a small Python
loop before each batched step), its phases with a fresh optimizer each, the proximal term
towards the starting weights, and its anchors written back after every step, bit for bit.

The parameters of a chunk of clients are stacked along a leading client dimension; one
``vmap(grad_and_value(...))`` call computes every client's loss and gradient, and
``fedtna.stacked_optim`` updates the stacks in place. In each phase the clients are kept
sorted by their number of steps, so the clients still training are always the first rows: a
finished client leaves the stack at once and its weights stop changing. A short batch (the
last one of an epoch) is padded with examples of weight zero, so a client's loss and gradient
are the mean over its real examples only. BatchNorm (batch statistics) and Dropout (global
random numbers) cannot be vectorized this way and are refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from fedtna.augment import BatchTransform
from fedtna.errors import ConfigError
from fedtna.masks import FixedMasks
from fedtna.stacked_optim import make_stacked_optimizer
from fedtna.training import OptimizerSettings, Phase, TrainStats, batch_indices

DEFAULT_MAX_CLIENTS_PER_CHUNK = 16
_UNSUPPORTED = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)

Tensors = dict[str, torch.Tensor]
StepFunction = Callable[..., tuple[Tensors, torch.Tensor]]


@dataclass(frozen=True)
class ClientBatchJob:
    """One client of a vectorized run: its data, its phases and its own seeded generator."""

    inputs: torch.Tensor
    labels: torch.Tensor
    phases: Sequence[Phase]
    generator: torch.Generator

    @property
    def total_steps(self) -> int:
        """Optimizer steps over all phases (phases of zero steps are skipped, as in local_train)."""
        return sum(max(0, phase.num_steps) for phase in self.phases)


@dataclass
class BatchingCost:
    """What stacking cost: client-steps and example slots computed, and how many were padding."""

    client_steps: int = 0
    stacked_client_steps: int = 0
    example_slots: int = 0
    padded_slots: int = 0

    @property
    def padding_waste(self) -> float:
        """Wasted fraction of the computed example slots (short batches padded, finished clients in the stack)."""
        return self.padded_slots / self.example_slots if self.example_slots else 0.0


@dataclass(frozen=True)
class VectorizedResult:
    """Every client's trained state and stats, in the order of the jobs, and the batching cost."""

    states: list[Tensors]
    stats: list[TrainStats]
    cost: BatchingCost = field(default_factory=BatchingCost)

    @property
    def padding_waste(self) -> float:
        """Shortcut for ``cost.padding_waste``."""
        return self.cost.padding_waste


def check_vectorizable(model: nn.Module, model_name: str | None = None) -> None:
    """Raise a one-line ConfigError when a module needs the sequential engines (BatchNorm, Dropout)."""
    for name, module in model.named_modules():
        if isinstance(module, _UNSUPPORTED):
            kind = "BatchNorm" if isinstance(module, _UNSUPPORTED[0]) else "Dropout"
            raise ConfigError(
                f"simulation.backend=vectorized cannot train model {model_name or type(model).__name__!r}: "
                f"it has {kind} ({name}: {type(module).__name__}); use simulation.backend=local or ray"
            )


def _step_functions(model: nn.Module, buffers: Tensors) -> tuple[StepFunction, StepFunction]:
    """Vmapped (grads, loss) of the batch-mean cross-entropy, unweighted and with per-example weights."""

    def mean_loss(params: Tensors, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, (params, buffers), (inputs,)), labels)

    def weighted_loss(params: Tensors, inputs: torch.Tensor, labels: torch.Tensor,
                      weights: torch.Tensor) -> torch.Tensor:
        losses = F.cross_entropy(functional_call(model, (params, buffers), (inputs,)), labels, reduction="none")
        return (losses * weights).sum() / weights.sum()

    return vmap(grad_and_value(mean_loss)), vmap(grad_and_value(weighted_loss))


def _stacked_batch(inputs: list[torch.Tensor], labels: list[torch.Tensor],
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
    """Stack per-client batches; short ones are padded with zero inputs (label 0) of weight 0.

    Returns (inputs, labels, weights or None when no padding was needed, padded slots).
    """
    sizes = [len(batch) for batch in labels]
    width = max(sizes)
    if min(sizes) == width:
        return torch.stack(inputs), torch.stack(labels), None, 0
    padded_x, padded_y, weights = [], [], torch.zeros(len(sizes), width, device=labels[0].device)
    for row, (batch_x, batch_y, size) in enumerate(zip(inputs, labels, sizes, strict=True)):
        missing = width - size
        padded_x.append(torch.cat([batch_x, batch_x.new_zeros(missing, *batch_x.shape[1:])]) if missing else batch_x)
        padded_y.append(torch.cat([batch_y, batch_y.new_zeros(missing)]) if missing else batch_y)
        weights[row, :size] = 1.0
    return torch.stack(padded_x), torch.stack(padded_y), weights, len(sizes) * width - sum(sizes)


def _phase_masks(masks: Sequence[FixedMasks | None], device: torch.device) -> dict[str, torch.Tensor]:
    """One fixed-mask tensor per parameter for the training rows of a phase: shared (broadcast)
    when every row has the same mask, else stacked per row (a row without a mask fixes nothing)."""
    names = sorted({name for row_masks in masks if row_masks for name in row_masks})
    combined: dict[str, torch.Tensor] = {}
    for name in names:
        per_row = [row_masks.get(name) if row_masks else None for row_masks in masks]
        first = per_row[0]
        if first is not None and all(m is first or (m is not None and torch.equal(m, first)) for m in per_row):
            mask = first.to(device)
        else:
            some = next(m for m in per_row if m is not None)
            mask = torch.stack([m if m is not None else torch.zeros_like(some) for m in per_row]).to(device)
        if bool(mask.any()):
            combined[name] = mask
    return combined


def parameters_without_gradient(model: nn.Module, sample: torch.Tensor) -> set[str]:
    """Parameters a backward pass never reaches: ``local_train``'s optimizer skips them (no decay, no proximal
    term), while ``torch.func.grad`` would give them zeros."""
    named = dict(model.named_parameters())
    with torch.enable_grad():
        output = model(sample)
        grads = torch.autograd.grad(output.sum(), list(named.values()), allow_unused=True)
    return {name for name, grad in zip(named, grads, strict=True) if grad is None}


def _fixed_masks(phase: Phase | None) -> FixedMasks | None:
    return phase.fixed_masks if phase is not None else None


class _Chunk:
    """The stacked training of one chunk of clients (rows of the stack), phase by phase."""

    def __init__(self, jobs: Sequence[ClientBatchJob], start: Tensors, batch_size: int,
                 step_functions: tuple[StepFunction, StepFunction], untouched: set[str], cost: BatchingCost) -> None:
        self.jobs = jobs
        self.trained_names = [name for name in start if name not in untouched]
        self.device = next(iter(start.values())).device
        count = len(jobs)
        self.rows = sorted(range(count), key=lambda client: -jobs[client].total_steps)  # row -> client
        self.params = {name: value.unsqueeze(0).repeat(count, *([1] * value.dim())) for name, value in start.items()}
        self.inputs = [job.inputs.to(self.device) for job in jobs]
        self.labels = [job.labels.to(self.device) for job in jobs]
        self.batches: list[Iterator[torch.Tensor]] = [
            batch_indices(len(job.labels), batch_size, job.generator) for job in jobs]
        self.loss_sums = torch.zeros(count, device=self.device)
        self.drift = [0.0] * count
        self.mean_step, self.weighted_step = step_functions
        self.cost = cost

    def _sort_rows(self, steps: Sequence[int]) -> None:
        """Order the rows by this phase's steps (most first), moving the stacked weights along."""
        rows = sorted(self.rows, key=lambda client: -steps[client])
        if rows != self.rows:
            position = torch.tensor([self.rows.index(client) for client in rows], device=self.device)
            self.params = {name: value.index_select(0, position) for name, value in self.params.items()}
            self.rows = rows

    def _next_batch(self, active: int, transform: BatchTransform | None,
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Each active client's next mini-batch, drawn and augmented with its own generator."""
        inputs, labels = [], []
        for client in self.rows[:active]:
            index = next(self.batches[client]).to(self.device)
            batch = self.inputs[client][index]
            if transform is not None:
                batch = transform(batch, self.jobs[client].generator)
            inputs.append(batch)
            labels.append(self.labels[client][index])
        stacked_x, stacked_y, weights, padded = _stacked_batch(inputs, labels)
        real = sum(len(batch) for batch in labels)
        self.cost.client_steps += active
        self.cost.stacked_client_steps += active
        self.cost.example_slots += real + padded
        self.cost.padded_slots += padded
        return stacked_x, stacked_y, weights

    def run_phase(self, phases: Sequence[Phase | None], settings: OptimizerSettings,
                  reference: Tensors | None, proximal_mu: float, transform: BatchTransform | None) -> None:
        """Train every client's phase (None or zero steps: the client sits this phase out)."""
        steps = [max(0, phase.num_steps) if phase is not None else 0 for phase in phases]
        self._sort_rows(steps)
        row_steps = [steps[client] for client in self.rows]
        if row_steps[0] == 0:
            return
        training = sum(1 for count in row_steps if count > 0)
        masks = _phase_masks([_fixed_masks(phases[client]) for client in self.rows[:training]], self.device)
        anchors = {name: self.params[name][:training].clone() for name in masks}
        optimizer = make_stacked_optimizer(settings)
        row_clients = torch.tensor(self.rows, device=self.device)
        for step in range(row_steps[0]):
            active = sum(1 for count in row_steps if count > step)  # a prefix: rows are sorted
            inputs, labels, weights = self._next_batch(active, transform)
            views = {name: value[:active] for name, value in self.params.items()}
            if weights is None:
                grads, losses = self.mean_step(views, inputs, labels)
            else:
                grads, losses = self.weighted_step(views, inputs, labels, weights)
            with torch.no_grad():
                trained = {name: views[name] for name in self.trained_names}
                if reference is not None:
                    for name, param in trained.items():
                        grads[name].add_(param - reference[name], alpha=proximal_mu)
                optimizer.step(trained, grads, active)
                for name, mask in masks.items():
                    row_mask = mask[:active] if mask.dim() == views[name].dim() else mask
                    views[name].copy_(torch.where(row_mask, anchors[name][:active], views[name]))
                self.loss_sums.index_add_(0, row_clients[:active], losses.detach().to(self.loss_sums.dtype))
        self._record_drift(masks, anchors, training)

    @torch.no_grad()
    def _record_drift(self, masks: Mapping[str, torch.Tensor], anchors: Tensors, training: int) -> None:
        """Per client of the phase, the largest |fixed entry - anchor| (0.0 by construction)."""
        for name, mask in masks.items():
            moved = (self.params[name][:training] - anchors[name][:training]).abs()
            per_row = torch.where(mask, moved, 0.0).flatten(1).amax(dim=1).tolist()
            for row, client in enumerate(self.rows[:training]):
                self.drift[client] = max(self.drift[client], per_row[row])

    def results(self, template: Mapping[str, torch.Tensor]) -> list[tuple[Tensors, TrainStats]]:
        """Each client's state dict (keys and order of ``template``) and its stats, in job order."""
        row_of = {client: row for row, client in enumerate(self.rows)}
        outcomes = []
        for client, job in enumerate(self.jobs):
            state = {name: (self.params[name][row_of[client]].clone() if name in self.params else value.clone())
                     for name, value in template.items()}
            steps = job.total_steps
            mean_loss = float(self.loss_sums[client]) / steps if steps else math.nan
            outcomes.append((state, TrainStats(mean_loss=mean_loss, num_steps=steps, anchor_drift=self.drift[client])))
        return outcomes


def vectorized_local_train(
    model: nn.Module,
    clients: Sequence[ClientBatchJob],
    optimizer_settings: OptimizerSettings,
    batch_size: int,
    proximal_mu: float = 0.0,
    batch_transform: BatchTransform | None = None,
    max_clients_per_chunk: int = DEFAULT_MAX_CLIENTS_PER_CHUNK,
) -> VectorizedResult:
    """``local_train`` for every client at once; all start from ``model``'s current weights, which stay untouched.

    Clients are sorted by their number of steps and trained in chunks of at most
    ``max_clients_per_chunk`` (memory), so clients of similar size share a chunk.
    """
    check_vectorizable(model)
    if max_clients_per_chunk < 1:
        raise ValueError(f"max_clients_per_chunk must be >= 1, got {max_clients_per_chunk}")
    model.train()
    start = {name: param.detach().clone() for name, param in model.named_parameters()}
    buffers = {name: buffer.detach() for name, buffer in model.named_buffers()}
    reference = {name: value.unsqueeze(0) for name, value in start.items()} if proximal_mu > 0 else None
    template = model.state_dict()
    step_functions = _step_functions(model, buffers)
    device = next(model.parameters()).device
    sample = next((job.inputs[:1].to(device) for job in clients if len(job.inputs)), None)
    untouched = parameters_without_gradient(model, sample) if sample is not None else set()
    order = sorted(range(len(clients)), key=lambda index: -clients[index].total_steps)
    outcomes: list[tuple[Tensors, TrainStats] | None] = [None] * len(clients)
    cost = BatchingCost()
    for begin in range(0, len(order), max_clients_per_chunk):
        members = order[begin : begin + max_clients_per_chunk]
        jobs = [clients[index] for index in members]
        chunk = _Chunk(jobs, start, batch_size, step_functions, untouched, cost)
        for phase_index in range(max(len(job.phases) for job in jobs)):
            phases = [job.phases[phase_index] if phase_index < len(job.phases) else None for job in jobs]
            chunk.run_phase(phases, optimizer_settings, reference, proximal_mu, batch_transform)
        for index, outcome in zip(members, chunk.results(template), strict=True):
            outcomes[index] = outcome
    done = [outcome for outcome in outcomes if outcome is not None]
    return VectorizedResult(states=[state for state, _ in done], stats=[stats for _, stats in done], cost=cost)
