"""Masks: seeded, stable across processes, right ratio, granularity and scope."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from fedtna.errors import ConfigError
from fedtna.masks import (
    AnchorGuard,
    MaskSpec,
    complement,
    derive_seed,
    draw_fixed_masks,
    fixed_fraction,
    mask_memory_bytes,
    masks_checksum,
    validate_scope,
)


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 50), nn.ReLU(), nn.Linear(50, 10))


CHECKSUM_SCRIPT = """
import json, torch
from torch import nn
from fedtna.masks import MaskSpec, draw_fixed_masks, masks_checksum
model = nn.Sequential(nn.Linear(20, 50), nn.ReLU(), nn.Linear(50, 10))
torch.manual_seed(12345)  # the global RNG must not matter
masks = draw_fixed_masks(model.named_parameters(), 987654321, MaskSpec(0.4, "weight"))
print(json.dumps({"checksum": masks_checksum(masks), "sum": int(sum(m.sum() for m in masks.values()))}))
"""


@pytest.mark.slow
def test_masks_identical_across_two_processes() -> None:
    outputs = [
        json.loads(subprocess.run([sys.executable, "-c", CHECKSUM_SCRIPT], capture_output=True, text=True,
                                  check=True, env={"PYTHONHASHSEED": str(salt)}).stdout)
        for salt in (1, 2)
    ]
    assert outputs[0] == outputs[1]
    here = draw_fixed_masks(small_model().named_parameters(), 987654321, MaskSpec(0.4, "weight"))
    assert outputs[0]["checksum"] == masks_checksum(here)


def test_masks_do_not_depend_on_global_rng_or_parameter_order() -> None:
    model = small_model()
    torch.manual_seed(1)
    first = draw_fixed_masks(model.named_parameters(), 5, MaskSpec(0.5, "weight"))
    torch.manual_seed(2)
    reversed_order = draw_fixed_masks(reversed(list(model.named_parameters())), 5, MaskSpec(0.5, "weight"))
    assert all(torch.equal(first[name], reversed_order[name]) for name in first)


def test_different_seeds_give_different_masks() -> None:
    model = small_model()
    a = draw_fixed_masks(model.named_parameters(), 1, MaskSpec(0.4, "weight"))
    b = draw_fixed_masks(model.named_parameters(), 2, MaskSpec(0.4, "weight"))
    assert masks_checksum(a) != masks_checksum(b)


@pytest.mark.parametrize("ratio", [0.0, 0.2, 0.6, 0.9])
def test_fixed_fraction_close_to_ratio(ratio: float) -> None:
    model = nn.Linear(200, 200)
    masks = draw_fixed_masks(model.named_parameters(), 3, MaskSpec(ratio, "weight"))
    assert abs(fixed_fraction(masks, model) - ratio) < 0.01


def test_neuron_granularity_fixes_whole_output_units() -> None:
    model = nn.Conv2d(3, 64, 3)
    masks = draw_fixed_masks(model.named_parameters(), 3, MaskSpec(0.5, "neuron"))
    weight = masks["weight"].reshape(64, -1)
    assert torch.all(weight.all(dim=1) | (~weight).all(dim=1))
    assert 10 < int(weight[:, 0].sum()) < 54
    assert torch.equal(masks["bias"], weight[:, 0])  # a unit's bias is fixed with its weights


def test_neuron_units_differ_between_layers() -> None:
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64))
    masks = draw_fixed_masks(model.named_parameters(), 3, MaskSpec(0.5, "neuron"))
    assert torch.equal(masks["0.bias"], masks["0.weight"][:, 0])
    assert torch.equal(masks["2.bias"], masks["2.weight"][:, 0])
    assert not torch.equal(masks["0.bias"], masks["2.bias"])


def test_scope_limits_masked_layers_and_unknown_layers_are_rejected() -> None:
    model = small_model()
    masks = draw_fixed_masks(model.named_parameters(), 3, MaskSpec(0.5, "weight", ("0",)))
    assert set(masks) == {"0.weight", "0.bias"}
    validate_scope(["0", "2"], model)
    with pytest.raises(ConfigError, match=r"unknown layer name\(s\) \['conv9'\]"):
        validate_scope(["conv9"], model)


def test_complement_flips_and_checksum_detects_one_bit() -> None:
    masks = draw_fixed_masks(small_model().named_parameters(), 3, MaskSpec(0.4, "weight"))
    flipped = complement(masks)
    assert all(torch.equal(~masks[n], flipped[n]) for n in masks)
    tampered = {n: m.clone() for n, m in masks.items()}
    tampered["0.weight"][0, 0] = ~tampered["0.weight"][0, 0]
    assert masks_checksum(tampered) != masks_checksum(masks)


def test_derive_seed_is_stable_and_in_range() -> None:
    assert derive_seed(0, "round", 1) == derive_seed(0, "round", 1)
    assert derive_seed(0, "round", 1) != derive_seed(0, "round", 2)
    assert 0 <= derive_seed("x") < 2**63


def test_guard_stores_only_fixed_values_and_masks_are_one_byte() -> None:
    model = nn.Linear(100, 100)
    masks = draw_fixed_masks(model.named_parameters(), 3, MaskSpec(0.4, "weight"))
    guard = AnchorGuard(model, masks)
    params = sum(p.numel() for p in model.parameters())
    assert guard.anchor_bytes == 4 * sum(int(m.sum()) for m in masks.values())
    assert guard.anchor_bytes < 0.5 * 4 * params
    assert mask_memory_bytes(masks) == params
