"""The K models of a model-fusion experiment: settings, data parts, initialisations, masked training.

Every mode trains on the same seeds: model k always gets the same data part, the same
data order and (where the mode allows) the same own initialisation, so the modes differ
only in what the mode changes. Training is fedtna.training.local_train; anchors are held
bit-exact by its Phase masks. No Flower import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from fedtna.augment import batch_transform
from fedtna.config import LmcConfig
from fedtna.data import partition_dataset
from fedtna.errors import ConfigError
from fedtna.fusion.specs import supported_names
from fedtna.masks import FixedMasks, derive_seed, draw_fixed_masks
from fedtna.training import OptimizerSettings, Phase, local_train, steps_per_epoch

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
            f"modes={list(modes)!r} includes {matched}, but weight matching has no permutation spec for "
            f"model={config.model_spec.name} (it knows {', '.join(supported_names())}); drop those modes"
        )
    return modes


def holdout_split(config: LmcConfig, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(trainable, held-out) training indices: a seeded ``holdout`` fraction is never trained on."""
    held = round(config.holdout * count)
    order = np.random.default_rng(derive_seed(config.seed, "lmc", "holdout") % (2**32)).permutation(count)
    return np.sort(order[held:]), np.sort(order[:held])


def data_parts(config: LmcConfig, train_labels: np.ndarray) -> list[np.ndarray]:
    """Training indices of each model: all data, equal random parts, or Dirichlet (non-IID) parts,
    of the trainable (not held-out) examples."""
    trainable, _ = holdout_split(config, len(train_labels))
    count, num_models = len(trainable), config.num_models
    if config.data_split == "same":
        return [trainable.copy() for _ in range(num_models)]
    if num_models > count:
        raise ConfigError(f"num_models={num_models} is more than the {count} training examples")
    split_seed = derive_seed(config.seed, "lmc", "split") % (2**32)
    if config.data_split == "disjoint":
        order = np.random.default_rng(split_seed).permutation(count)
        return [np.sort(trainable[part]) for part in np.array_split(order, num_models)]
    parts = partition_dataset(config.partition_spec, train_labels[trainable], num_models, split_seed)
    return [trainable[np.asarray(part, dtype=np.int64)] for part in parts]


def seeded_state(build: Callable[[], nn.Module], seed: int) -> StateDict:
    """A fresh model's parameters from ``seed``, without touching the global RNG stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def checkpoint_state(path: str, template: nn.Module) -> StateDict:
    """A saved state dict that fits ``template`` exactly (same keys, shapes, dtypes), or one ConfigError line."""
    from pathlib import Path

    try:
        state = torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same user error
        raise ConfigError(f"init_checkpoint={path!r} is not a readable torch state dict: {error}") from None
    expected = template.state_dict()
    if not isinstance(state, dict) or set(state) != set(expected):
        keys = sorted(set(state) ^ set(expected)) if isinstance(state, dict) else ["<not a dict>"]
        raise ConfigError(f"init_checkpoint={path!r} does not fit this model: keys differ {keys[:3]}; train it "
                          "with the same model and dataset")
    for name, tensor in expected.items():
        if state[name].shape != tensor.shape or state[name].dtype != tensor.dtype:
            raise ConfigError(f"init_checkpoint={path!r} does not fit this model: {name} is "
                              f"{state[name].dtype}{list(state[name].shape)}, "
                              f"expected {tensor.dtype}{list(tensor.shape)}")
    return {name: tensor.clone() for name, tensor in state.items()}


def own_initial_states(config: LmcConfig, build: Callable[[], nn.Module]) -> tuple[StateDict, list[StateDict]]:
    """(shared init, per-model inits): one seed for all under init=shared, one per model under independent,
    the checkpoint for all under init=checkpoint (TNA-PFN's anchors then stay at the pretrained values)."""
    if config.init == "checkpoint":
        assert config.init_checkpoint is not None
        start = checkpoint_state(config.init_checkpoint, build())
        return start, [start for _ in range(config.num_models)]
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
        stats = local_train(model, inputs, labels, [Phase(masks, num_steps)], model_optimizer(config, k),
                            config.batch_size, generator, batch_transform=batch_transform(config.augmentation))
        if hook is not None:
            hook.remove()
        state = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
        trained.append(TrainedModel(state=state, train_loss=stats.mean_loss, anchor_drift=stats.anchor_drift))
    return trained


def model_optimizer(config: LmcConfig, k: int) -> OptimizerSettings:
    """Model k's optimizer: ``lr``, or ``model_lrs[k % len]`` when set (diverse fine-tuned soup ingredients)."""
    settings = config.optimizer_settings
    if config.model_lrs is None:
        return settings
    return replace(settings, lr=float(config.model_lrs[k % len(config.model_lrs)]))


def total_steps(config: LmcConfig, parts: Sequence[np.ndarray]) -> int:
    """Optimizer steps of one training kind (all K models), for the progress bar."""
    return sum(config.epochs * steps_per_epoch(len(part), config.batch_size) for part in parts)
