"""The typed config: parsing, range checks, the _target_ allow-list, credentials checked before work."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedtna.config import to_plain
from fedtna.config.checks import check_run_config, wandb_credentials_present
from fedtna.config.entry import compose_run_config
from fedtna.errors import ConfigError


def compose(tmp_path: Path, *overrides: str):
    return compose_run_config(list(overrides), tmp_path)


def test_the_yaml_defaults_parse_into_typed_objects(tmp_path: Path) -> None:
    config = compose(tmp_path, "strategy=fedpnu")
    check_run_config(config)
    assert config.optimizer_settings.lr == 0.05 and config.mask_spec.ratio == 0.4
    assert config.strategy_spec.arguments["pnu_split"] == "auto"
    assert config.model_spec.target == "fedtna.models.cnn.CNN"
    assert to_plain(config)["strategy"]["name"] == "fedpnu"


@pytest.mark.parametrize(("override", "message"), [
    ("mask_ratio=1.0", "mask_ratio=1.0 is outside the allowed range [0, 1)"),
    ("momentum=1.0", "momentum=1.0 is outside the allowed range [0, 1)"),
    ("faults.crash=0.7", None),
    ("min_clients_fraction=2", "min_clients_fraction=2.0 is outside the allowed range [0, 1]"),
    ("mask.granularity=row", "mask.granularity='row' is not one of ['weight', 'neuron']"),
    ("nesterov=true", None),
])
def test_range_checks_are_one_line(tmp_path: Path, override: str, message: str | None) -> None:
    overrides = [override] + (["faults.nan=0.5"] if override.startswith("faults") else [])
    overrides += ["momentum=0.0"] if override == "nesterov=true" else []
    with pytest.raises(ConfigError) as raised:
        check_run_config(compose(tmp_path, *overrides))
    assert "\n" not in str(raised.value)
    if message is not None:
        assert message in str(raised.value)


def test_wandb_online_without_credentials_is_refused_before_any_work(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_IDENTITY_TOKEN_FILE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    assert not wandb_credentials_present()
    with pytest.raises(ConfigError, match=r"wandb.mode=online needs a wandb API key .*wandb login.*"
                                          r"wandb.mode=offline"):
        check_run_config(compose(tmp_path, "wandb.mode=online"))
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password 0123456789abcdef\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert wandb_credentials_present()


def test_own_packages_are_refused_until_trusted(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "mylab_ext"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(
        "import torch\n"
        "class Tiny(torch.nn.Module):\n"
        "    def __init__(self, input_shape, num_classes, width=4):\n"
        "        super().__init__()\n"
        "        self.fc = torch.nn.Linear(input_shape[0] * input_shape[1] * input_shape[2], num_classes)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x.flatten(1))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from fedtna.models import build_model

    refused = compose(tmp_path, "model._target_=mylab_ext.models.Tiny", "~model.width", "+model.width=4")
    with pytest.raises(ConfigError, match=r"model._target_='mylab_ext.models.Tiny' is not allowed"):
        build_model(refused.model_spec, (1, 28, 28), 10)
    trusted = compose(tmp_path, "model._target_=mylab_ext.models.Tiny", "trusted_packages=[mylab_ext]")
    model = build_model(trusted.model_spec, (1, 28, 28), 10)
    assert type(model).__name__ == "Tiny"
    lookalike = compose(tmp_path, "model._target_=mylab_ext_evil.models.Tiny", "trusted_packages=[mylab_ext]")
    with pytest.raises(ConfigError, match="is not allowed"):
        build_model(lookalike.model_spec, (1, 28, 28), 10)
