"""FedPNU alternates as named: ``pnu_split=auto`` is the paper's epoch split from E = 2 and a step split at
E = 1, and clients report the masks of the phases that ran (``fedtna/fl/phase_metrics.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fedtna.config import RunConfig
from fedtna.fl.experiment import initial_model
from fedtna.fl.local_data import client_data
from fedtna.fl.phase_metrics import accepted_checksums, chained_checksum, mask_metrics
from fedtna.fl.schedules import LocalWork, get_schedule
from fedtna.fl.schedules.pnu import resolve_split
from fedtna.fl.server_app import run_server
from fedtna.fl.strategies import build_strategy
from fedtna.masks import (
    MaskSpec,
    complement,
    draw_fixed_masks,
    fixed_fraction,
    masks_checksum,
)
from fedtna.training import Phase, local_train, steps_per_epoch
from tests.conftest import InProcessGrid

DESIGN_CARD = ("strategy=fedpnu", "mask_ratio=0.6")  # with the default local_epochs=1


def client_phases(config: RunConfig, partition: int = 0) -> tuple[torch.nn.Module, list[Phase], LocalWork]:
    """What client ``partition`` trains in round 1: the model, the schedule's phases and the local work."""
    plan = build_strategy(config).round_plan(1)
    model = initial_model(config)
    _, labels = client_data(config, partition)
    work = LocalWork(config.local_epochs, steps_per_epoch(len(labels), config.batch_size))
    return model, get_schedule(plan.schedule)(model, plan, work), work


def test_auto_resolves_to_epoch_from_two_epochs_and_to_step_at_one() -> None:
    assert [resolve_split("auto", epochs) for epochs in (1, 2, 3)] == ["step", "epoch", "epoch"]
    assert resolve_split("epoch", 1) == "epoch" and resolve_split("step", 4) == "step"


def test_the_design_card_alternates_at_one_epoch_with_exact_anchors_in_each_phase(run_config_factory) -> None:
    config = run_config_factory(*DESIGN_CARD)
    assert config.local_epochs == 1 and config.strategy_spec.arguments["pnu_split"] == "auto"
    model, phases, work = client_phases(config)
    assert [phase.num_steps for phase in phases] == [work.total_steps // 2, work.total_steps - work.total_steps // 2]
    assert all(phase.num_steps > 0 for phase in phases)
    first, second = phases[0].fixed_masks, phases[1].fixed_masks
    assert fixed_fraction(first, model) == pytest.approx(0.6, abs=0.01)
    assert all(torch.equal(second[name], ~first[name]) for name in first)
    inputs, labels = client_data(config, 0)
    generator = torch.Generator().manual_seed(0)
    for phase in phases:  # each phase on its own: its anchors stay bit-exact, its free weights move
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        stats = local_train(model, inputs, labels, [phase], config.optimizer_settings, config.batch_size, generator)
        assert stats.num_steps == phase.num_steps > 0 and stats.anchor_drift == 0.0
        for name, parameter in model.named_parameters():
            held = phase.fixed_masks[name]
            assert parameter.detach()[held].numpy().tobytes() == before[name][held].numpy().tobytes()
        assert any(not torch.equal(p.detach()[~phase.fixed_masks[n]], before[n][~phase.fixed_masks[n]])
                   for n, p in model.named_parameters())


@pytest.mark.parametrize("epochs", [2, 3])
def test_two_epochs_or_more_keep_the_papers_epoch_split(run_config_factory, epochs: int) -> None:
    _, phases, work = client_phases(run_config_factory(*DESIGN_CARD, f"local_epochs={epochs}"))
    assert [phase.num_steps for phase in phases] == [(epochs // 2) * work.steps_per_epoch,
                                                      (epochs - epochs // 2) * work.steps_per_epoch]


def test_explicit_epoch_split_at_one_epoch_trains_only_the_complement(run_config_factory) -> None:
    model, phases, work = client_phases(run_config_factory(*DESIGN_CARD, "strategy.pnu_split=epoch"))
    assert [phase.num_steps for phase in phases] == [0, work.total_steps]
    metrics = mask_metrics(phases, model, 0.0)  # the empty mask phase is not reported
    assert metrics["fixed_fraction"] == fixed_fraction(phases[1].fixed_masks, model)
    assert metrics["fixed_fraction"] == pytest.approx(0.4, abs=0.01)
    assert metrics["mask_checksum"] == masks_checksum(phases[1].fixed_masks)


def test_mask_metrics_describe_the_phases_that_ran() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    masks = draw_fixed_masks(model.named_parameters(), 5, MaskSpec(0.6, "weight"))
    rho, other = fixed_fraction(masks, model), fixed_fraction(complement(masks), model)
    both = mask_metrics([Phase(masks, 3), Phase(complement(masks), 1)], model, 0.0)
    assert both["fixed_fraction"] == pytest.approx((3 * rho + 1 * other) / 4)
    assert both["mask_checksum"] == chained_checksum([masks_checksum(masks), masks_checksum(complement(masks))])
    assert both["mask_checksum"] not in {masks_checksum(masks), masks_checksum(complement(masks))}
    only_mask = mask_metrics([Phase(masks, 5)], model, 0.25)  # FedPFN: as before
    assert only_mask == {"fixed_fraction": rho, "anchor_drift": 0.25, "mask_checksum": masks_checksum(masks)}
    with_free = mask_metrics([Phase(masks, 2), Phase(None, 2)], model, 0.0)  # a phase without masks holds none
    assert with_free["fixed_fraction"] == pytest.approx(rho / 2)
    assert mask_metrics([Phase(None, 4), Phase(masks, 0)], model, 0.0) == {}
    accepted = accepted_checksums([masks, complement(masks)])
    assert accepted == {masks_checksum(masks), masks_checksum(complement(masks)), both["mask_checksum"]}


@pytest.mark.parametrize(("split", "expected"), [("auto", (0.45, 0.55)), ("epoch", (0.39, 0.41))])
def test_the_design_card_run_reports_what_ran(run_config_factory, split: str, expected: tuple[float, float]) -> None:
    """In a whole run the server accepts the checksums of what ran; fixed_fraction is ~0.5 when both phases ran,
    1 − ρ when only the complement did (explicit pnu_split=epoch at E = 1), never the ρ of an empty phase."""
    config = run_config_factory(*DESIGN_CARD, f"strategy.pnu_split={split}", "num_rounds=1")
    summary = run_server(InProcessGrid(config, 4), config)
    assert summary["status"] == "completed"
    (row,) = [json.loads(line) for line in (Path(config.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert expected[0] < row["fixed_fraction"] < expected[1]
    assert row["anchor_drift"] == 0.0
