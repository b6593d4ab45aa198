"""The typed shape of a run (``conf/config.yaml``) and of a fusion run (``conf/lmc.yaml``).

The YAML files are the user-facing defaults; these dataclasses only say which keys exist
and their types, so no default is written twice (every field is ``MISSING`` here). Group
nodes whose keys differ per option (dataset, partition, model, strategy) stay mappings
and are read through :class:`~fedtna.config.targets.TargetSpec`. Modules receive the
typed views (``optimizer_settings``, ``mask_spec``, ...), never the whole tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from fedtna.config.targets import StrategySpec, TargetSpec
from fedtna.masks import MaskSpec
from fedtna.training import OptimizerSettings


def _required() -> Any:
    return field(default=MISSING)


@dataclass
class MaskLayout:
    """Which weights a mask may fix: ``weight`` or ``neuron`` granularity, optional layer scope."""

    granularity: str = _required()
    scope: list[str] | None = _required()

    def spec(self, ratio: float) -> MaskSpec:
        """The mask this layout gives at fixed-weight ratio ``ratio``."""
        scope = tuple(self.scope) if self.scope is not None else None
        return MaskSpec(ratio=ratio, granularity=self.granularity, scope=scope)


@dataclass
class RunMaskLayout(MaskLayout):
    """A federated run's masks may also be drawn once for the whole run (``per_round: false``)."""

    per_round: bool = _required()


@dataclass
class ClientResources:
    """Ray resources of one simulated client (fractional GPUs share a GPU)."""

    num_cpus: float = _required()
    num_gpus: float = _required()


@dataclass
class SimulationSettings:
    """The simulation engine (local, ray, ...): its workers, Ray's size and each client's share of it."""

    backend: str = _required()
    local_workers: int = _required()
    clients_per_batch: int = _required()
    num_cpus: int | None = _required()
    num_gpus: int | None = _required()
    jobs_per_machine: int | None = _required()
    threads_per_client: int = _required()
    client_resources: ClientResources = _required()
    ray_address: str | None = _required()


@dataclass
class FaultSettings:
    """Seeded fault injection: per client and round, the probability of crashing, of replying NaN, or of
    straggling (sleeping ``delay_seconds`` before training)."""

    crash: float = _required()
    nan: float = _required()
    delay: float = _required()
    delay_seconds: float = _required()


@dataclass
class WandbSettings:
    """Weights & Biases logging (``disabled`` never imports wandb)."""

    mode: str = _required()
    project: str | None = _required()
    entity: str | None = _required()
    group: str | None = _required()
    name: str | None = _required()


@dataclass
class TrainingKeys:
    """Keys both entry points share: seed, data, model, local optimizer and mask."""

    seed: int = _required()
    dataset: dict[str, Any] = _required()
    partition: dict[str, Any] = _required()
    model: dict[str, Any] = _required()
    batch_size: int = _required()
    optimizer: str = _required()
    lr: float = _required()
    momentum: float = _required()
    weight_decay: float = _required()
    nesterov: bool = _required()
    augmentation: str = _required()
    mask_ratio: float = _required()
    eval_batch_size: int = _required()
    trusted_packages: list[str] = _required()
    data_dir: str = _required()
    device: str = _required()
    progress: bool = _required()
    print_config: bool = _required()
    output_dir: str = _required()

    @property
    def optimizer_settings(self) -> OptimizerSettings:
        """The client optimizer as one typed object."""
        return OptimizerSettings(name=self.optimizer, lr=self.lr, momentum=self.momentum,
                                 weight_decay=self.weight_decay, nesterov=self.nesterov)

    @property
    def dataset_spec(self) -> TargetSpec:
        """The dataset loader and its arguments."""
        return TargetSpec.of("dataset", self.dataset, self.trusted_packages)

    @property
    def partition_spec(self) -> TargetSpec:
        """The partition function and its arguments."""
        return TargetSpec.of("partition", self.partition, self.trusted_packages)

    @property
    def model_spec(self) -> TargetSpec:
        """The model class and its hyperparameters."""
        return TargetSpec.of("model", self.model, self.trusted_packages)


@dataclass
class RunConfig(TrainingKeys):
    """``python -m fedtna.run``: one federated experiment."""

    strategy: dict[str, Any] = _required()
    resume: str | None = _required()
    rerun_diverged: bool = _required()
    checkpoint_every: int = _required()
    min_clients_fraction: float = _required()
    faults: FaultSettings = _required()
    num_clients: int = _required()
    validation_fraction: float = _required()
    num_rounds: int = _required()
    fraction_train: float = _required()
    fraction_evaluate: float = _required()
    local_epochs: int = _required()
    lr_decay: float = _required()
    mask: RunMaskLayout = _required()
    eval_every: int = _required()
    round_timeout: float = _required()
    save_model: bool = _required()
    verbose: bool = _required()
    wandb: WandbSettings = _required()
    simulation: SimulationSettings = _required()

    @property
    def strategy_spec(self) -> StrategySpec:
        """The strategy class, its server optimizer and its arguments."""
        return StrategySpec.of(self.strategy, self.trusted_packages)

    @property
    def mask_spec(self) -> MaskSpec:
        """Ratio, granularity and scope of the round masks."""
        return self.mask.spec(self.mask_ratio)


@dataclass
class LmcConfig(TrainingKeys):
    """``python -m fedtna.lmc``: K models per mode, interpolated and fused."""

    num_models: int = _required()
    init: str = _required()
    init_checkpoint: str | None = _required()
    model_lrs: list[float] | None = _required()
    holdout: float = _required()
    data_split: str = _required()
    modes: list[str] | None = _required()
    mask: MaskLayout = _required()
    epochs: int = _required()
    num_points: int = _required()
    bn_reset_batches: int = _required()
    num_threads: int | None = _required()

    @property
    def mask_spec(self) -> MaskSpec:
        """Ratio, granularity and scope of the one mask all models share."""
        return self.mask.spec(self.mask_ratio)
