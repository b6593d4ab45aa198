"""Masked local training keeps anchors bit-exact under every optimizer and the proximal term."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fedtna.fl.schedules import LocalWork, available_schedules, get_schedule
from fedtna.fl.schedules.pnu import first_phase_steps
from fedtna.masks import MaskSpec, complement, draw_fixed_masks
from fedtna.training import OptimizerSettings, Phase, evaluate, local_train, steps_per_epoch


def toy_problem(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4))
    inputs = torch.randn(96, 1, 4, 4)
    labels = torch.randint(0, 4, (96,))
    return model, inputs, labels


def snapshot(model: nn.Module) -> dict[str, bytes]:
    return {name: p.detach().numpy().tobytes() for name, p in model.named_parameters()}


OPTIMIZERS = [
    OptimizerSettings(name="sgd", lr=0.1),
    OptimizerSettings(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-3),
    OptimizerSettings(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-3, nesterov=True),
    OptimizerSettings(name="adam", lr=0.01, weight_decay=5e-3),
]


@pytest.mark.parametrize("settings", OPTIMIZERS, ids=["sgd", "sgd-momentum-wd", "nesterov", "adam"])
@pytest.mark.parametrize("proximal_mu", [0.0, 0.1])
def test_anchors_stay_bit_exact(settings: OptimizerSettings, proximal_mu: float) -> None:
    model, inputs, labels = toy_problem()
    masks = draw_fixed_masks(model.named_parameters(), 11, MaskSpec(0.4, "weight"))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    stats = local_train(model, inputs, labels, [Phase(masks, 20)], settings, 16, torch.Generator().manual_seed(0),
                        proximal_mu=proximal_mu)
    after = dict(model.named_parameters())
    for name, mask in masks.items():
        assert before[name][mask].numpy().tobytes() == after[name].detach()[mask].numpy().tobytes()
        assert not torch.equal(before[name][~mask], after[name].detach()[~mask])
    assert stats.anchor_drift == 0.0


class WithUnusedLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
        self.unused = nn.Linear(4, 4)  # never called: its parameters get no gradient

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


def test_proximal_term_skips_parameters_without_gradient() -> None:
    _, inputs, labels = toy_problem()
    model = WithUnusedLayer()
    before = model.unused.weight.detach().clone()
    local_train(model, inputs, labels, [Phase(None, 5)], OPTIMIZERS[1], 16, torch.Generator().manual_seed(0),
                proximal_mu=0.1)
    assert model.unused.weight.grad is None
    assert torch.equal(model.unused.weight.detach(), before)


def test_zeroing_gradients_alone_would_move_anchors() -> None:
    """The control: a gradient hook does not freeze weights under momentum + weight decay."""
    model, inputs, labels = toy_problem()
    masks = draw_fixed_masks(model.named_parameters(), 11, MaskSpec(0.4, "weight"))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for name, parameter in model.named_parameters():
        keep = (~masks[name]).float()
        parameter.register_hook(lambda grad, keep=keep: grad * keep)
    local_train(model, inputs, labels, [Phase(None, 20)], OPTIMIZERS[1], 16, torch.Generator().manual_seed(0))
    moved = [name for name, p in model.named_parameters()
             if not torch.equal(before[name][masks[name]], p.detach()[masks[name]])]
    assert moved


def test_pnu_switches_masks_at_the_split() -> None:
    model, inputs, labels = toy_problem()
    masks = draw_fixed_masks(model.named_parameters(), 11, MaskSpec(0.5, "weight"))
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    generator = torch.Generator().manual_seed(0)
    settings = OPTIMIZERS[1]
    local_train(model, inputs, labels, [Phase(masks, 6)], settings, 16, generator)
    middle = {name: p.detach().clone() for name, p in model.named_parameters()}
    for name, mask in masks.items():  # phase 1: the fixed part did not move, the rest did
        assert torch.equal(middle[name][mask], start[name][mask])
        if (~mask).any():
            assert not torch.equal(middle[name][~mask], start[name][~mask])
    local_train(model, inputs, labels, [Phase(complement(masks), 6)], settings, 16, generator)
    for name, mask in masks.items():  # phase 2: the other way round
        now = dict(model.named_parameters())[name].detach()
        assert torch.equal(now[~mask], middle[name][~mask])
        if mask.any():
            assert not torch.equal(now[mask], middle[name][mask])


def test_pnu_schedule_phases() -> None:
    from dataclasses import replace

    from fedtna.fl.round_plan import MaskPlan, RoundPlan

    model, _, labels = toy_problem()
    per_epoch = steps_per_epoch(len(labels), 16)
    pnu = get_schedule("pnu")
    plan = RoundPlan(server_round=1, round_seed=9, schedule="pnu", mask=MaskPlan(5, MaskSpec(0.4, "weight")),
                     schedule_options={"pnu_split": "epoch"})
    phases = pnu(model, plan, LocalWork(3, per_epoch))
    assert [p.num_steps for p in phases] == [1 * per_epoch, 2 * per_epoch]
    assert all(torch.equal(~phases[0].fixed_masks[n], phases[1].fixed_masks[n]) for n in phases[0].fixed_masks)
    assert [p.num_steps for p in pnu(model, plan, LocalWork(1, per_epoch))] == [0, per_epoch]
    step_split = pnu(model, replace(plan, schedule_options={"pnu_split": "step"}), LocalWork(1, per_epoch))
    assert [p.num_steps for p in step_split] == [per_epoch // 2, per_epoch - per_epoch // 2]
    assert first_phase_steps("step", LocalWork(5, 7)) == 17


def test_schedules_registered() -> None:
    assert {"full", "pfn", "pnu"} <= set(available_schedules())


def test_zero_ratio_mask_trains_exactly_like_no_mask() -> None:
    results = []
    for masks in (None, "zero"):
        model, inputs, labels = toy_problem()
        fixed = draw_fixed_masks(model.named_parameters(), 3, MaskSpec(0.0, "weight")) if masks else None
        local_train(model, inputs, labels, [Phase(fixed, 12)], OPTIMIZERS[1], 16, torch.Generator().manual_seed(4))
        results.append(snapshot(model))
    assert results[0] == results[1]


def test_training_reduces_loss_and_is_deterministic() -> None:
    outcomes = []
    for _ in range(2):
        model, inputs, labels = toy_problem()
        before, _ = evaluate(model, inputs, labels)
        local_train(model, inputs, labels, [Phase(None, 30)], OPTIMIZERS[1], 16, torch.Generator().manual_seed(1))
        after, _ = evaluate(model, inputs, labels)
        assert after < before
        outcomes.append(snapshot(model))
    assert outcomes[0] == outcomes[1]


def test_trailing_single_example_batch_is_dropped() -> None:
    assert steps_per_epoch(33, 16) == 2
    assert steps_per_epoch(34, 16) == 3
    assert steps_per_epoch(1, 16) == 1
