"""The K models of a model-fusion experiment: settings, data parts, initialisations, masked training.

Every mode trains on the same seeds: model k always gets the same data part, the same
data order and (where the mode allows) the same own initialisation, so the modes differ
only in what the mode changes. Training is fedtna.training.local_train; anchors are held
bit-exact by its Phase masks. No Flower import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedtna.augment import batch_transform
from fedtna.config import LmcConfig
from fedtna.data import partition_dataset
from fedtna.errors import ConfigError
from fedtna.masks import FixedMasks, derive_seed, draw_fixed_masks
from fedtna.training import Phase, local_train, steps_per_epoch

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


def mask_seed(config: LmcConfig) -> int:
    """The one mask every model of every masked mode shares."""
    return derive_seed(config.seed, "lmc", "mask")


def resolve_modes(config: LmcConfig, matching_supported: bool) -> tuple[str, ...]:
    """The requested modes, or all the model supports; weight matching on an unsupported model fails."""
    if config.modes is None:
        return tuple(mode for mode in MODES if matching_supported or mode not in MATCHED_MODES)
    modes = tuple(dict.fromkeys(config.modes))
    matched = [mode for mode in modes if mode in MATCHED_MODES]
    if matched and not matching_supported:
        raise ConfigError(
            f"modes={list(modes)!r} includes {matched}, but weight matching supports only "
            f"model=mlp|cnn, not model={config.model_spec.name}; drop those modes"
        )
    return modes


def data_parts(config: LmcConfig, train_labels: np.ndarray) -> list[np.ndarray]:
    """Training indices of each model: all data, equal random parts, or Dirichlet (non-IID) parts."""
    count, num_models = len(train_labels), config.num_models
    if config.data_split == "same":
        return [np.arange(count) for _ in range(num_models)]
    if num_models > count:
        raise ConfigError(f"num_models={num_models} is more than the {count} training examples")
    split_seed = derive_seed(config.seed, "lmc", "split") % (2**32)
    if config.data_split == "disjoint":
        order = np.random.default_rng(split_seed).permutation(count)
        return [np.sort(part) for part in np.array_split(order, num_models)]
    return partition_dataset(config.partition_spec, train_labels, num_models, split_seed)


def seeded_state(build: Callable[[], nn.Module], seed: int) -> StateDict:
    """A fresh model's parameters from ``seed``, without touching the global RNG stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def own_initial_states(config: LmcConfig, build: Callable[[], nn.Module]) -> tuple[StateDict, list[StateDict]]:
    """(shared init, per-model inits): one seed for all under init=shared, one per model otherwise."""
    shared = seeded_state(build, derive_seed(config.seed, "lmc", "init", "shared"))
    if config.init == "shared":
        return shared, [shared for _ in range(config.num_models)]
    own = [seeded_state(build, derive_seed(config.seed, "lmc", "init", k)) for k in range(config.num_models)]
    return shared, own


def mode_masks(config: LmcConfig, template: nn.Module) -> FixedMasks:
    """The single fixed-weight mask (ratio rho) shared by all models of tna_pfn and prune_init."""
    return draw_fixed_masks(template.named_parameters(), mask_seed(config), config.mask_spec)


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
    config: LmcConfig,
    build: Callable[[], nn.Module],
    train_inputs: torch.Tensor,
    train_labels: torch.Tensor,
    parts: Sequence[np.ndarray],
    device: torch.device,
    on_step: Callable[[], None] | None = None,
) -> list[TrainedModel]:
    """Train the K models of one training kind; model k uses part k and data-order seed k in every mode."""
    template = build()
    masks = mode_masks(config, template) if training != "vanilla" else None
    shared, own = own_initial_states(config, build)
    trained = []
    for k in range(config.num_models):
        model = build().to(device)
        start = starting_state(training, own[k], shared, masks or {})
        model.load_state_dict(start)
        hook = model.register_forward_hook(lambda module, *_: on_step() if module.training else None) \
            if on_step is not None else None
        index = torch.as_tensor(parts[k], dtype=torch.long)
        inputs, labels = train_inputs[index], train_labels[index]
        num_steps = config.epochs * steps_per_epoch(len(labels), config.batch_size)
        generator = torch.Generator().manual_seed(derive_seed(config.seed, "lmc", "order", k))
        stats = local_train(model, inputs, labels, [Phase(masks, num_steps)], config.optimizer_settings,
                            config.batch_size, generator, batch_transform=batch_transform(config.augmentation))
        if hook is not None:
            hook.remove()
        state = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
        trained.append(TrainedModel(state=state, train_loss=stats.mean_loss, anchor_drift=stats.anchor_drift))
    return trained


def total_steps(config: LmcConfig, parts: Sequence[np.ndarray]) -> int:
    """Optimizer steps of one training kind (all K models), for the progress bar."""
    return sum(config.epochs * steps_per_epoch(len(part), config.batch_size) for part in parts)
