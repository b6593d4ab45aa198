"""Every range check of a config, in one place; each failure is one line naming key, value and range.

Checks of values that belong to one pluggable part live beside that part and run in the
same validation step (a strategy's constructor, a partition function's preconditions, a
model's constructor); everything that the run itself owns is listed here once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fedtna.augment import AUGMENTATIONS
from fedtna.config.schema import LmcConfig, RunConfig, TrainingKeys
from fedtna.device import resolve_device
from fedtna.errors import ConfigError, out_of_range
from fedtna.masks import GRANULARITIES
from fedtna.training import OPTIMIZERS

RangeCheck = tuple[str, Callable[[Any], bool], str]

LMC_MODES = ("vanilla", "tna_pfn", "prune_init", "weight_matching", "tna_pfn_weight_matching")
LMC_INITS = ("independent", "shared", "checkpoint")
LMC_DATA_SPLITS = ("same", "disjoint", "dirichlet")
WANDB_MODES = ("disabled", "offline", "online")


def _one_of(choices: tuple[str, ...]) -> tuple[Callable[[Any], bool], str]:
    return (lambda value: value in choices), f"one of {list(choices)}"


def _host_port(value: Any) -> bool:
    """``host:port`` or ``[ipv6]:port`` with a port in 1..65535 (a Ray head's GCS address)."""
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):([0-9]{1,5})", value)
    return match is not None and 1 <= int(match.group(3)) <= 65535


SHARED_CHECKS: list[RangeCheck] = [
    ("seed", lambda v: v >= 0, ">= 0"),
    ("mask_ratio", lambda v: 0.0 <= v < 1.0, "[0, 1)"),
    ("batch_size", lambda v: v >= 1, ">= 1"),
    ("eval_batch_size", lambda v: v >= 1, ">= 1"),
    ("optimizer", *_one_of(tuple(OPTIMIZERS))),
    ("lr", lambda v: v > 0.0, "> 0"),
    ("momentum", lambda v: 0.0 <= v < 1.0, "[0, 1)"),
    ("weight_decay", lambda v: v >= 0.0, ">= 0"),
    ("augmentation", *_one_of(tuple(AUGMENTATIONS))),
    ("mask.granularity", *_one_of(GRANULARITIES)),
]

RUN_CHECKS: list[RangeCheck] = [
    ("num_clients", lambda v: v >= 1, ">= 1"),
    ("validation_fraction", lambda v: 0.0 <= v < 1.0, "[0, 1)"),
    ("num_rounds", lambda v: v >= 1, ">= 1"),
    ("fraction_train", lambda v: 0.0 < v <= 1.0, "(0, 1]"),
    ("fraction_evaluate", lambda v: 0.0 <= v <= 1.0, "[0, 1]"),
    ("local_epochs", lambda v: v >= 1, ">= 1"),
    ("lr_decay", lambda v: 0.0 < v <= 1.0, "(0, 1]"),
    ("eval_every", lambda v: v >= 1, ">= 1"),
    ("round_timeout", lambda v: v > 0, "> 0"),
    ("checkpoint_every", lambda v: v >= 1, ">= 1"),
    ("min_clients_fraction", lambda v: 0.0 <= v <= 1.0, "[0, 1]"),
    ("faults.crash", lambda v: 0.0 <= v <= 1.0, "[0, 1]"),
    ("faults.nan", lambda v: 0.0 <= v <= 1.0, "[0, 1]"),
    ("faults.delay", lambda v: 0.0 <= v <= 1.0, "[0, 1]"),
    ("faults.delay_seconds", lambda v: v >= 0.0, ">= 0"),
    ("wandb.mode", *_one_of(WANDB_MODES)),
    ("simulation.threads_per_client", lambda v: v >= 1, ">= 1"),
    ("simulation.local_workers", lambda v: v >= 0, ">= 0 (0 = clients run in the server's process)"),
    ("simulation.clients_per_batch", lambda v: v >= 1, ">= 1"),
    ("simulation.num_cpus", lambda v: v is None or v >= 1, ">= 1 (or null = this job's share of the machine)"),
    ("simulation.jobs_per_machine", lambda v: v is None or v >= 1, ">= 1 (or null = from the Hydra launcher)"),
    ("simulation.client_resources.num_cpus", lambda v: v > 0.0, "> 0"),
    ("simulation.client_resources.num_gpus", lambda v: 0.0 <= v <= 1.0, "[0, 1] (fractions share a GPU)"),
    ("simulation.ray_address", lambda v: v is None or _host_port(v),
     "host:port of a running Ray cluster's head, e.g. 10.0.0.5:6379 (or null = a private Ray per run)"),
]

LMC_CHECKS: list[RangeCheck] = [
    ("num_models", lambda v: v >= 2, "integers >= 2"),
    ("num_points", lambda v: v >= 3, "integers >= 3"),
    ("epochs", lambda v: v >= 1, "integers >= 1"),
    ("bn_reset_batches", lambda v: v >= 1, "integers >= 1"),
    ("num_threads", lambda v: v is None or v >= 1, "integers >= 1 (or null)"),
    ("init", *_one_of(LMC_INITS)),
    ("holdout", lambda v: 0.0 <= v <= 0.5, "[0, 0.5]"),
    ("model_lrs", lambda v: v is None or (len(v) > 0 and all(lr > 0 for lr in v)),
     "a non-empty list of learning rates > 0 (or null = lr for every model)"),
    ("data_split", *_one_of(LMC_DATA_SPLITS)),
    ("modes", lambda v: v is None or (len(v) > 0 and set(v) <= set(LMC_MODES)),
     f"a non-empty list from {list(LMC_MODES)} (or null = all)"),
]


def _value(config: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def apply_checks(config: Any, checks: list[RangeCheck]) -> None:
    """Raise the first failing check as one ConfigError line."""
    for key, is_allowed, allowed in checks:
        value = _value(config, key)
        try:
            ok = bool(is_allowed(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            if allowed.startswith("one of"):
                raise ConfigError(f"{key}={value!r} is not {allowed}")
            raise out_of_range(key, value, allowed)


def _check_shared(config: TrainingKeys) -> None:
    apply_checks(config, SHARED_CHECKS)
    if config.nesterov and (config.momentum <= 0 or config.optimizer != "sgd"):
        raise ConfigError(f"nesterov=true needs optimizer=sgd and momentum > 0 (got optimizer={config.optimizer!r}, "
                          f"momentum={config.momentum})")
    resolve_device(config.device)


def check_run_config(config: RunConfig) -> None:
    """Checks of a federated run that need no data and no model."""
    _check_shared(config)
    apply_checks(config, RUN_CHECKS)
    fault_total = config.faults.crash + config.faults.nan + config.faults.delay
    if fault_total > 1.0:
        raise out_of_range("faults.crash + faults.nan + faults.delay", fault_total, "<= 1")
    if config.wandb.mode == "online" and not wandb_credentials_present():
        raise ConfigError("wandb.mode=online needs a wandb API key and none was found (WANDB_API_KEY or a netrc "
                          "entry for the wandb host): run `wandb login`, or use wandb.mode=offline")
    gpus = config.simulation.client_resources.num_gpus
    if gpus > 0 and config.simulation.ray_address is None:  # a cluster's GPUs are checked when joining it
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"simulation.client_resources.num_gpus={gpus} but no CUDA GPU is visible; set it to 0")


def wandb_credentials_present() -> bool:
    """Whether wandb can log in without asking: an API key or identity token in the environment, or netrc."""
    import netrc
    import os
    from pathlib import Path
    from urllib.parse import urlparse

    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return netrc.netrc(str(path)).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def check_lmc_config(config: LmcConfig) -> None:
    """Checks of a fusion run that need no data and no model."""
    _check_shared(config)
    apply_checks(config, LMC_CHECKS)
    if (config.init == "checkpoint") != (config.init_checkpoint is not None):
        raise ConfigError(f"init={config.init!r} with init_checkpoint={config.init_checkpoint!r}: init=checkpoint "
                          "needs init_checkpoint=<path to a model.pt>, and init_checkpoint needs init=checkpoint")
    if config.init_checkpoint is not None:
        from pathlib import Path

        if not Path(config.init_checkpoint).expanduser().is_file():
            raise ConfigError(f"init_checkpoint={config.init_checkpoint!r} is not a file (a model.pt written by a "
                              "fedtna run with save_model=true)")


def check_against_data(num_clients: int, num_train_examples: int, dataset_name: str, held_out: int = 0) -> None:
    """Checks that need the loaded dataset's size (``held_out``: examples kept for validation)."""
    if num_clients > num_train_examples - held_out:
        left = f" left after the {held_out} held out for validation" if held_out else ""
        raise ConfigError(f"num_clients={num_clients} is more than the {num_train_examples - held_out} training "
                          f"examples of dataset {dataset_name!r}{left}")
