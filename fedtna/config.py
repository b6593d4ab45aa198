"""Every range check of a run config, in one place; each failure is one clear line."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fedtna.device import resolve_device
from fedtna.errors import ConfigError
from fedtna.results import WANDB_MODES


def _get(config: Mapping[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise ConfigError(f"{dotted} is missing from the config")
        value = value[part]
    return value


RangeCheck = tuple[str, Callable[[Any], bool], str]

RANGE_CHECKS: list[RangeCheck] = [
    ("mask_ratio", lambda v: 0.0 <= float(v) < 1.0, "[0, 1)"),
    ("num_clients", lambda v: int(v) >= 1, ">= 1"),
    ("num_rounds", lambda v: int(v) >= 1, ">= 1"),
    ("fraction_train", lambda v: 0.0 < float(v) <= 1.0, "(0, 1]"),
    ("fraction_evaluate", lambda v: 0.0 <= float(v) <= 1.0, "[0, 1]"),
    ("local_epochs", lambda v: int(v) >= 1, ">= 1"),
    ("batch_size", lambda v: int(v) >= 1, ">= 1"),
    ("lr", lambda v: float(v) > 0.0, "> 0"),
    ("lr_decay", lambda v: 0.0 < float(v) <= 1.0, "(0, 1]"),
    ("momentum", lambda v: 0.0 <= float(v) < 1.0, "[0, 1)"),
    ("weight_decay", lambda v: float(v) >= 0.0, ">= 0"),
    ("eval_every", lambda v: int(v) >= 1, ">= 1"),
    ("mask.granularity", lambda v: v in ("weight", "neuron"), "one of ['weight', 'neuron']"),
    ("wandb.mode", lambda v: v in WANDB_MODES, f"one of {list(WANDB_MODES)}"),
    ("simulation.client_resources.num_cpus", lambda v: float(v) > 0.0, "> 0"),
    ("simulation.client_resources.num_gpus", lambda v: 0.0 <= float(v) <= 1.0, "[0, 1] (fractions share a GPU)"),
]

PARTITION_CHECKS: dict[str, list[RangeCheck]] = {
    "dirichlet": [
        ("partition.alpha", lambda v: float(v) > 0.0, "> 0"),
        ("partition.min_partition_size", lambda v: int(v) >= 0, ">= 0"),
    ],
    "pathological": [("partition.classes_per_client", lambda v: int(v) >= 1, ">= 1")],
}


def _check(config: Mapping[str, Any], checks: list[RangeCheck]) -> None:
    for key, is_allowed, allowed in checks:
        value = _get(config, key)
        try:
            ok = is_allowed(value)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"{key}={value!r} is outside the allowed range {allowed}")


def validate_run_config(config: Mapping[str, Any]) -> None:
    """Checks that need no data: ranges, choices, device, strategy options."""
    from fedtna.strategies import strategy_class

    _check(config, RANGE_CHECKS)
    _check(config, PARTITION_CHECKS.get(str(config["partition"].get("name")), []))
    resolve_device(str(config["device"]))
    if float(config["simulation"]["client_resources"]["num_gpus"]) > 0:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                "simulation.client_resources.num_gpus="
                f"{config['simulation']['client_resources']['num_gpus']} but no CUDA GPU is visible; set it to 0"
            )
    strategy_class(config).check_config(config)
    num_classes = config["dataset"].get("num_classes")
    _check_classes_per_client(config, num_classes)


def _check_classes_per_client(config: Mapping[str, Any], num_classes: int | None) -> None:
    per_client = config["partition"].get("classes_per_client")
    if per_client is not None and num_classes is not None and int(per_client) > int(num_classes):
        raise ConfigError(
            f"partition.classes_per_client={per_client} is more than the {num_classes} classes of "
            f"dataset {config['dataset'].get('name')!r}"
        )


def validate_against_data(config: Mapping[str, Any], num_train_examples: int, num_classes: int) -> None:
    """Checks that need the loaded dataset's size and classes."""
    num_clients = int(config["num_clients"])
    if num_clients > num_train_examples:
        raise ConfigError(
            f"num_clients={num_clients} is more than the {num_train_examples} training examples of "
            f"dataset {config['dataset'].get('name')!r}"
        )
    _check_classes_per_client(config, num_classes)
