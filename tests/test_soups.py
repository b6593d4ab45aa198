"""Model soups: greedy and uniform soups on made-up models with a known answer, and fine-tuning from a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from fedtna.config import parse_lmc_config
from fedtna.config.checks import check_lmc_config
from fedtna.config.entry import compose_config
from fedtna.errors import ConfigError
from fedtna.fusion.interpolation import Measurement
from fedtna.fusion.soups import best_single, greedy_soup, uniform_soup


def states(*values: float) -> list[dict[str, torch.Tensor]]:
    return [{"w": torch.tensor([value], dtype=torch.float64)} for value in values]


def peaked_at(target: float):
    """Accuracy 1 - |w - target|: a soup helps when it averages towards the target."""
    return lambda state: Measurement(loss=0.0, accuracy=1.0 - abs(float(state["w"]) - target))


def test_greedy_soup_keeps_only_models_that_help() -> None:
    models = states(0.0, 1.0, 0.9, -5.0)
    soup = greedy_soup(models, peaked_at(0.8), peaked_at(0.8))
    assert soup.ingredients == [2]  # adding 1.0 would move the soup to 0.95 (worse), the rest much worse
    assert soup.holdout_accuracy == pytest.approx(0.9)
    assert uniform_soup(models, peaked_at(0.8), peaked_at(0.8)).ingredients == [0, 1, 2, 3]
    assert best_single(models, peaked_at(0.8), peaked_at(0.8)).ingredients == [2]


def test_greedy_soup_adds_a_model_that_moves_the_average_to_the_optimum() -> None:
    soup = greedy_soup(states(0.6, 1.0), peaked_at(0.8), peaked_at(0.0))
    assert soup.ingredients == [0, 1] and soup.holdout_accuracy == pytest.approx(1.0)
    assert soup.test_accuracy == pytest.approx(0.2)  # the test meter only reports


def lmc_config(tmp_path: Path, *overrides: str):
    cfg = compose_config("lmc", ["dataset=synthetic", "dataset.num_train=200", "dataset.num_test=60",
                                 "dataset.height=6", "dataset.width=6", "dataset.channels=1", "model=mlp",
                                 "model.hidden_sizes=[16]", "epochs=2", "batch_size=20", "num_points=3",
                                 "progress=false", *overrides])
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = str(tmp_path / "out")
    return parse_lmc_config(cfg)


def saved_start(tmp_path: Path) -> Path:
    from fedtna.data import load_dataset
    from fedtna.models import build_model

    config = lmc_config(tmp_path)
    bundle = load_dataset(config.dataset_spec)
    torch.manual_seed(0)
    model = build_model(config.model_spec, bundle.input_shape, bundle.num_classes)
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    return path


def test_fine_tuned_copies_from_a_checkpoint_make_soups(tmp_path: Path) -> None:
    from fedtna.fusion.cli import run_lmc

    start = saved_start(tmp_path)
    config = lmc_config(tmp_path, "init=checkpoint", f"init_checkpoint={start}", "num_models=3",
                        "holdout=0.2", "model_lrs=[0.05,0.2]", "modes=[vanilla,tna_pfn]")
    result = run_lmc(config)
    assert result["holdout_size"] == 40 and result["data_part_sizes"] == [160, 160, 160]
    for mode in ("vanilla", "tna_pfn"):
        soups = result["modes"][mode]["soups"]
        assert soups["uniform"]["ingredients"] == [0, 1, 2]
        assert soups["best_single"]["ingredients"][0] in soups["greedy"]["ingredients"]
        assert soups["greedy"]["holdout_accuracy"] >= soups["best_single"]["holdout_accuracy"]
    assert json.loads((Path(config.output_dir) / "lmc.json").read_text())["modes"]["tna_pfn"]["soups"]

    from fedtna.report.build import build_report

    report = build_report([Path(config.output_dir)])
    markdown = report.files["md"].read_text()
    assert "### Model soups" in markdown
    greedy = 100 * result["modes"]["tna_pfn"]["soups"]["greedy"]["test_accuracy"]
    assert "| TNA-PFN | 1 |" in markdown and f"{greedy:.2f} ± 0.00" in markdown  # one seed: std 0


def test_anchors_stay_at_the_pretrained_values(tmp_path: Path) -> None:
    from fedtna.data import load_dataset
    from fedtna.fusion.training import data_parts, mode_masks, train_models
    from fedtna.models import build_model

    start = saved_start(tmp_path)
    config = lmc_config(tmp_path, "init=checkpoint", f"init_checkpoint={start}", "holdout=0.1")
    bundle = load_dataset(config.dataset_spec)
    build = lambda: build_model(config.model_spec, bundle.input_shape, bundle.num_classes)  # noqa: E731
    parts = data_parts(config, bundle.train_y.numpy())
    pretrained = torch.load(start)
    masks = mode_masks(config, build())
    for model in train_models("tna_pfn", config, build, bundle.train_x, bundle.train_y, parts, torch.device("cpu")):
        for name, mask in masks.items():
            assert torch.equal(model.state[name][mask], pretrained[name][mask])  # bit-exact anchors
            assert not torch.equal(model.state[name][~mask], pretrained[name][~mask])


@pytest.mark.parametrize("overrides, message", [
    (["init=checkpoint"], "init=checkpoint needs init_checkpoint"),
    (["init_checkpoint=/no/such/model.pt", "init=checkpoint"], "is not a file"),
    (["holdout=0.9"], "holdout=0.9 is outside the allowed range [0, 0.5]"),
    (["model_lrs=[0.1,-1.0]"], "model_lrs="),
])
def test_bad_soup_settings_are_one_line(tmp_path: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as caught:
        check_lmc_config(lmc_config(tmp_path, *overrides))
    assert "\n" not in str(caught.value)


def test_a_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    from fedtna.fusion.cli import run_lmc

    path = tmp_path / "other.pt"
    torch.save({"fc1.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(ConfigError, match="does not fit this model"):
        run_lmc(lmc_config(tmp_path, "init=checkpoint", f"init_checkpoint={path}"))
