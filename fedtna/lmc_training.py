"""The K models of a model-fusion experiment: settings, data parts, initialisations, masked training.

Every mode trains on the same seeds: model k always gets the same data part, the same
data order and (where the mode allows) the same own initialisation, so the modes differ
only in what the mode changes. Training is fedtna.training.local_train; anchors are held
bit-exact by its Phase masks. No Flower import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fedtna.data import partition_dataset
from fedtna.errors import ConfigError
from fedtna.masks import FixedMasks, derive_seed, draw_fixed_masks
from fedtna.training import OptimizerSettings, Phase, local_train, optimizer_settings_from, steps_per_epoch

StateDict = dict[str, torch.Tensor]

# Mode -> the training it measures; the matched modes permute already trained models.
MODE_TRAINING: dict[str, str] = {
    "vanilla": "vanilla",
    "tna_pfn": "tna_pfn",
    "prune_init": "prune_init",
    "weight_matching": "vanilla",
    "tna_pfn_weight_matching": "tna_pfn",
}
MODES = tuple(MODE_TRAINING)
MATCHED_MODES = ("weight_matching", "tna_pfn_weight_matching")
INITS = ("independent", "shared")
DATA_SPLITS = ("same", "disjoint", "dirichlet")
GRANULARITIES = ("weight", "neuron")


@dataclass(frozen=True)
class LmcSettings:
    """The validated keys of conf/lmc.yaml that decide what is trained and measured."""

    seed: int
    num_models: int
    init: str
    data_split: str
    modes: tuple[str, ...] | None
    mask_ratio: float
    granularity: str
    scope: tuple[str, ...] | None
    epochs: int
    batch_size: int
    optimizer: OptimizerSettings
    num_points: int
    bn_reset_batches: int
    eval_batch_size: int

    @property
    def mask_seed(self) -> int:
        """The one mask every model of every masked mode shares."""
        return derive_seed(self.seed, "lmc", "mask")


def _fail(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{key}={value!r} is outside the allowed range {allowed}")


def _integer(config: Mapping[str, Any], key: str, minimum: int) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(key, value, f"integers >= {minimum}")
    return value


def _choice(config: Mapping[str, Any], key: str, choices: Sequence[str]) -> str:
    value = config.get(key)
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not one of {list(choices)}")
    return str(value)


def _modes(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    modes = tuple(str(mode) for mode in value)
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown or not modes:
        raise ConfigError(f"modes={list(modes)!r} must be a non-empty list from {list(MODES)} (or null = all)")
    return tuple(dict.fromkeys(modes))


def settings_from(config: Mapping[str, Any]) -> LmcSettings:
    """Validate the range of every key; each failure is one line naming key, value and range."""
    mask_ratio = config.get("mask_ratio")
    if isinstance(mask_ratio, bool) or not isinstance(mask_ratio, (int, float)) or not 0.0 <= mask_ratio < 1.0:
        raise _fail("mask_ratio", mask_ratio, "[0, 1)")
    lr = config.get("lr")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise _fail("lr", lr, "> 0")
    momentum = config.get("momentum", 0.0)
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= momentum < 1.0:
        raise _fail("momentum", momentum, "[0, 1)")
    weight_decay = config.get("weight_decay", 0.0)
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise _fail("weight_decay", weight_decay, ">= 0")
    mask = config.get("mask") or {}
    scope = mask.get("scope")
    return LmcSettings(
        seed=_integer(config, "seed", 0),
        num_models=_integer(config, "num_models", 2),
        init=_choice(config, "init", INITS),
        data_split=_choice(config, "data_split", DATA_SPLITS),
        modes=_modes(config.get("modes")),
        mask_ratio=float(mask_ratio),
        granularity=_choice({"mask.granularity": mask.get("granularity", "weight")}, "mask.granularity",
                            GRANULARITIES),
        scope=tuple(scope) if scope is not None else None,
        epochs=_integer(config, "epochs", 1),
        batch_size=_integer(config, "batch_size", 1),
        optimizer=optimizer_settings_from(config),
        num_points=_integer(config, "num_points", 3),
        bn_reset_batches=_integer(config, "bn_reset_batches", 1),
        eval_batch_size=_integer(config, "eval_batch_size", 1),
    )


def resolve_modes(settings: LmcSettings, model_name: str, matching_supported: bool) -> tuple[str, ...]:
    """The requested modes, or all the model supports; weight matching on an unsupported model fails."""
    if settings.modes is None:
        return tuple(mode for mode in MODES if matching_supported or mode not in MATCHED_MODES)
    matched = [mode for mode in settings.modes if mode in MATCHED_MODES]
    if matched and not matching_supported:
        raise ConfigError(
            f"modes={list(settings.modes)!r} includes {matched}, but weight matching supports only "
            f"model=mlp|cnn, not model={model_name}; drop those modes"
        )
    return settings.modes


def data_parts(settings: LmcSettings, partition_cfg: Mapping[str, Any], train_labels: np.ndarray) -> list[np.ndarray]:
    """Training indices of each model: all data, equal random parts, or Dirichlet (non-IID) parts."""
    count, num_models = len(train_labels), settings.num_models
    if settings.data_split == "same":
        return [np.arange(count) for _ in range(num_models)]
    if num_models > count:
        raise ConfigError(f"num_models={num_models} is more than the {count} training examples")
    split_seed = derive_seed(settings.seed, "lmc", "split") % (2**32)
    if settings.data_split == "disjoint":
        order = np.random.default_rng(split_seed).permutation(count)
        return [np.sort(part) for part in np.array_split(order, num_models)]
    return partition_dataset(partition_cfg, train_labels, num_models, split_seed)


def seeded_state(build: Callable[[], nn.Module], seed: int) -> StateDict:
    """A fresh model's parameters from ``seed``, without touching the global RNG stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def own_initial_states(settings: LmcSettings, build: Callable[[], nn.Module]) -> tuple[StateDict, list[StateDict]]:
    """(shared init, per-model inits): one seed for all under init=shared, one per model otherwise."""
    shared = seeded_state(build, derive_seed(settings.seed, "lmc", "init", "shared"))
    if settings.init == "shared":
        return shared, [shared for _ in range(settings.num_models)]
    own = [seeded_state(build, derive_seed(settings.seed, "lmc", "init", k)) for k in range(settings.num_models)]
    return shared, own


def mode_masks(settings: LmcSettings, template: nn.Module) -> FixedMasks:
    """The single fixed-weight mask (ratio rho) shared by all models of tna_pfn and prune_init."""
    scope = list(settings.scope) if settings.scope is not None else None
    return draw_fixed_masks(template.named_parameters(), settings.mask_seed, settings.mask_ratio,
                            settings.granularity, scope)


def starting_state(training: str, own: StateDict, shared: StateDict, masks: FixedMasks) -> StateDict:
    """vanilla: own init; tna_pfn: anchors from the shared init, the rest own; prune_init: anchors zeroed."""
    if training == "vanilla":
        return {name: tensor.clone() for name, tensor in own.items()}
    start = {name: tensor.clone() for name, tensor in own.items()}
    for name, mask in masks.items():
        fixed_value = shared[name] if training == "tna_pfn" else torch.zeros_like(own[name])
        start[name] = torch.where(mask, fixed_value, own[name])
    return start


@dataclass(frozen=True)
class TrainedModel:
    """One trained model and what its training reported."""

    state: StateDict
    train_loss: float
    anchor_drift: float


def train_models(
    training: str,
    settings: LmcSettings,
    build: Callable[[], nn.Module],
    train_inputs: torch.Tensor,
    train_labels: torch.Tensor,
    parts: Sequence[np.ndarray],
    device: torch.device,
    on_step: Callable[[], None] | None = None,
) -> list[TrainedModel]:
    """Train the K models of one training kind; model k uses part k and data-order seed k in every mode."""
    template = build()
    masks = mode_masks(settings, template) if training != "vanilla" else None
    shared, own = own_initial_states(settings, build)
    trained = []
    for k in range(settings.num_models):
        model = build().to(device)
        start = starting_state(training, own[k], shared, masks or {})
        model.load_state_dict(start)
        hook = model.register_forward_hook(lambda module, *_: on_step() if module.training else None) \
            if on_step is not None else None
        index = torch.as_tensor(parts[k], dtype=torch.long)
        inputs, labels = train_inputs[index], train_labels[index]
        num_steps = settings.epochs * steps_per_epoch(len(labels), settings.batch_size)
        generator = torch.Generator().manual_seed(derive_seed(settings.seed, "lmc", "order", k))
        stats = local_train(model, inputs, labels, [Phase(masks, num_steps)], settings.optimizer,
                            settings.batch_size, generator)
        if hook is not None:
            hook.remove()
        state = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
        trained.append(TrainedModel(state=state, train_loss=stats.mean_loss, anchor_drift=stats.anchor_drift))
    return trained


def total_steps(settings: LmcSettings, parts: Sequence[np.ndarray]) -> int:
    """Optimizer steps of one training kind (all K models), for the progress bar."""
    return sum(settings.epochs * steps_per_epoch(len(part), settings.batch_size) for part in parts)
