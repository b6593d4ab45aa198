"""Per-batch random crop + flip: shapes, exact values, seeding, device, and its hook in local_train."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from fedtna.augment import AUGMENTATIONS, RandomCropFlip, batch_transform
from fedtna.config.checks import check_lmc_config, check_run_config
from fedtna.config.entry import compose_config, compose_run_config
from fedtna.config.parse import parse_lmc_config
from fedtna.errors import ConfigError
from fedtna.training import OptimizerSettings, Phase, local_train


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(count: int = 16, channels: int = 3, height: int = 32, width: int = 32) -> torch.Tensor:
    return torch.randn(count, channels, height, width, generator=seeded(123))


def manual_crop_flip(batch: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, flips: torch.Tensor,
                     padding: int) -> torch.Tensor:
    """The reference, one image at a time: zero-pad, slice the window, flip the width axis."""
    height, width = batch.shape[2:]
    out = []
    for image, top, left, flip in zip(batch, rows.tolist(), cols.tolist(), flips.tolist(), strict=True):
        window = F.pad(image, (padding,) * 4)[:, top : top + height, left : left + width]
        out.append(window.flip(-1) if flip else window)
    return torch.stack(out)


@pytest.mark.parametrize("shape", [(16, 3, 32, 32), (5, 1, 28, 28), (3, 2, 7, 11), (1, 3, 32, 32)])
def test_shape_and_dtype_are_preserved(shape: tuple[int, ...]) -> None:
    batch = images(*shape)
    out = RandomCropFlip()(batch, seeded(0))
    assert out.shape == batch.shape and out.dtype == batch.dtype and out.is_contiguous()


@pytest.mark.parametrize("padding", [4, 2, 0])
def test_values_equal_a_per_image_crop_and_flip(padding: int) -> None:
    batch = images(64, 3, 9, 13)  # non-square, so rows and columns cannot be swapped unnoticed
    transform = RandomCropFlip(padding)
    rows, cols, flips = transform.draw(len(batch), seeded(7))
    out = transform(batch, seeded(7))
    assert torch.equal(out, manual_crop_flip(batch, rows, cols, flips, padding))
    assert 0 < int(flips.sum()) < len(batch)  # both flipped and unflipped images occur
    if padding:
        assert rows.min() >= 0 and rows.max() <= 2 * padding and len(set(rows.tolist())) > 1
        assert not torch.equal(out, batch)


def test_crop_moves_content_and_pads_with_zero() -> None:
    batch = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6) + 1  # no zeros inside
    transform = RandomCropFlip(4)
    for seed in range(20):
        rows, cols, flips = transform.draw(2, seeded(seed))
        out = transform(batch, seeded(seed))
        for k in range(2):
            shift_row, shift_col = int(rows[k]) - 4, int(cols[k]) - 4
            source = batch[k, 0]
            expected = torch.zeros(6, 6)
            for i in range(6):
                for j in range(6):
                    si, sj = i + shift_row, (5 - j if flips[k] else j) + shift_col
                    if 0 <= si < 6 and 0 <= sj < 6:
                        expected[i, j] = source[si, sj]
            assert torch.equal(out[k, 0], expected)


def test_no_shift_and_no_flip_is_the_identity() -> None:
    batch = images(8)
    out = RandomCropFlip(0)(batch, seeded(1))
    _, _, flips = RandomCropFlip(0).draw(8, seeded(1))
    assert torch.equal(out[~flips], batch[~flips]) and torch.equal(out[flips], batch[flips].flip(-1))


def test_same_generator_same_output_different_generator_different_output() -> None:
    batch = images(32)
    transform = RandomCropFlip()
    first, again = transform(batch, seeded(3)), transform(batch, seeded(3))
    other = transform(batch, seeded(4))
    assert torch.equal(first, again) and not torch.equal(first, other)
    generator = seeded(3)
    transform(batch, generator)
    assert not torch.equal(transform(batch, generator), first)  # the stream advances batch by batch


def test_input_batch_is_not_modified() -> None:
    batch = images(8)
    before = batch.clone()
    RandomCropFlip()(batch, seeded(0))
    assert torch.equal(batch, before)


DEVICES = ["cpu", "meta"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_runs_on_the_batch_device(device: str) -> None:
    """The random numbers come from the CPU training generator; pixels stay on the batch's device."""
    batch = images(8).to(device)
    out = RandomCropFlip()(batch, seeded(5))
    assert out.device == batch.device and out.shape == batch.shape
    if device == "cuda":
        assert torch.equal(out.cpu(), RandomCropFlip()(batch.cpu(), seeded(5)))


@pytest.mark.parametrize("padding", [-1, 1.5, True, "4"])
def test_bad_padding_is_refused(padding: object) -> None:
    with pytest.raises(ValueError, match="padding must be an integer >= 0"):
        RandomCropFlip(padding)  # type: ignore[arg-type]


def test_registry_names() -> None:
    assert set(AUGMENTATIONS) == {"none", "crop_flip"}
    assert batch_transform("none") is None
    assert isinstance(batch_transform("crop_flip"), RandomCropFlip) and batch_transform("crop_flip").padding == 4


# ---------------------------------------------------------------- local_train hook


def train_once(transform, seed: int = 0) -> tuple[dict[str, torch.Tensor], float]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    inputs, labels = images(20, 3, 8, 8), torch.arange(20) % 3
    stats = local_train(model, inputs, labels, [Phase(None, 6)], OptimizerSettings("sgd", 0.1, 0.9, 5e-4), 8,
                        seeded(seed), batch_transform=transform)
    return {k: v.clone() for k, v in model.state_dict().items()}, stats.mean_loss


def test_local_train_without_transform_is_unchanged() -> None:
    plain, plain_loss = train_once(None)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    stats = local_train(model, images(20, 3, 8, 8), torch.arange(20) % 3, [Phase(None, 6)],
                        OptimizerSettings("sgd", 0.1, 0.9, 5e-4), 8, seeded(0))  # no keyword at all
    assert stats.mean_loss == plain_loss and all(torch.equal(plain[k], v) for k, v in model.state_dict().items())


def test_local_train_applies_the_transform_to_every_batch_and_is_seeded() -> None:
    calls: list[tuple[tuple[int, ...], torch.device]] = []
    crop_flip = RandomCropFlip()

    def recording(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        calls.append((tuple(batch.shape), batch.device))
        return crop_flip(batch, generator)

    augmented, loss = train_once(recording)
    assert len(calls) == 6 and all(shape[1:] == (3, 8, 8) for shape, _ in calls)
    again, loss_again = train_once(crop_flip)
    other_seed, _ = train_once(crop_flip, seed=1)
    plain, _ = train_once(None)
    assert loss == loss_again and all(torch.equal(augmented[k], again[k]) for k in augmented)
    assert any(not torch.equal(augmented[k], plain[k]) for k in augmented)
    assert any(not torch.equal(augmented[k], other_seed[k]) for k in augmented)


# ---------------------------------------------------------------- config key


def test_augmentation_defaults_to_none_in_both_entry_points(tmp_path: Path) -> None:
    assert compose_run_config([], tmp_path).augmentation == "none"
    assert compose_config("lmc").augmentation == "none"


def test_unknown_augmentation_is_one_config_error_line(tmp_path: Path) -> None:
    config = compose_run_config(["augmentation=mixup"], tmp_path)
    with pytest.raises(ConfigError) as caught:
        check_run_config(config)
    assert str(caught.value) == "augmentation='mixup' is not one of ['none', 'crop_flip']"
    lmc = compose_config("lmc", ["augmentation=cutout"])
    OmegaConf.set_struct(lmc, False)
    lmc.output_dir = str(tmp_path)
    with pytest.raises(ConfigError, match=r"^augmentation='cutout' is not one of \['none', 'crop_flip'\]$"):
        check_lmc_config(parse_lmc_config(lmc))
