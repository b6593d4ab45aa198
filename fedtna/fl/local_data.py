"""The run's dataset, its held-out validation part and every client's partition of the rest, loaded once
per process."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedtna.config.schema import RunConfig, TrainingKeys
from fedtna.config.targets import TargetSpec
from fedtna.data import DatasetBundle, load_dataset, partition_dataset
from fedtna.data.partition import StoredPartitioning
from fedtna.data.validation import TrainPartitioning, ValidationSplit, validation_split
from fedtna.disk_cache import cached_arrays
from fedtna.masks import derive_seed


def _key(spec: TargetSpec) -> str:
    """A hashable, printable key of everything that determines what a spec builds."""
    return json.dumps({"node": {"name": spec.name, "_target_": spec.target, **spec.arguments},
                       "trusted": list(spec.trusted_packages)}, sort_keys=True, default=str)


def _spec(role: str, key: str) -> TargetSpec:
    decoded = json.loads(key)
    return TargetSpec.of(role, decoded["node"], decoded["trusted"])


@lru_cache(maxsize=4)
def _bundle(dataset_key: str) -> DatasetBundle:
    return load_dataset(_spec("dataset", dataset_key))


def dataset_bundle(config: TrainingKeys) -> DatasetBundle:
    """The run's dataset, cached per process (simulation actors reuse it every round)."""
    return _bundle(_key(config.dataset_spec))


def partition_seed(seed: int) -> int:
    """The partitioners' seed, derived from the run seed (numpy needs < 2^32)."""
    return derive_seed(seed, "partition") % (2**32)


def validation_seed(seed: int) -> int:
    """The validation split's seed, derived from the run seed."""
    return derive_seed(seed, "validation") % (2**32)


@lru_cache(maxsize=4)
def _split(dataset_key: str, fraction: float, seed: int) -> ValidationSplit:
    return validation_split(_bundle(dataset_key).train_y.numpy(), fraction, validation_seed(seed))


def held_out_split(config: RunConfig) -> ValidationSplit | None:
    """The run's validation split (``validation_fraction`` of each class), None when it holds nothing out."""
    if config.validation_fraction == 0:
        return None
    return _split(_key(config.dataset_spec), config.validation_fraction, config.seed)


@lru_cache(maxsize=4)
def _validation_tensors(dataset_key: str, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of the held-out validation examples."""
    bundle, indices = _bundle(dataset_key), torch.from_numpy(_split(dataset_key, fraction, seed).validation)
    return bundle.train_x[indices].contiguous(), bundle.train_y[indices].contiguous()


def validation_set(config: RunConfig) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The server's validation set, None when ``validation_fraction`` is 0."""
    if config.validation_fraction == 0:
        return None
    return _validation_tensors(_key(config.dataset_spec), config.validation_fraction, config.seed)


@lru_cache(maxsize=4)
def _partitions(dataset_key: str, partition_key: str, num_clients: int, seed: int, validation_fraction: float = 0.0,
                run_seed: int = 0) -> Sequence[np.ndarray]:
    """Partitions of the training set; with ``validation_fraction`` > 0, of what the validation split leaves."""
    labels = _bundle(dataset_key).train_y.numpy()
    if validation_fraction == 0:
        return partition_dataset(_spec("partition", partition_key), labels, num_clients, seed)
    train = _split(dataset_key, validation_fraction, run_seed).train
    return TrainPartitioning(partition_dataset(_spec("partition", partition_key), labels[train], num_clients, seed),
                             train)


STORED_SPLIT_MAX_CLIENTS = 200
"""Up to this many clients the whole split is kept in the disk cache, so a later run with the same
dataset, hold-out, partition, clients and seed neither imports flwr-datasets nor draws again (seconds
per run); above it clients read their own partition lazily."""


@lru_cache(maxsize=8)
def source_digest(target: str) -> str:
    """A digest of the code that draws a split: the module of the partition ``_target_`` and the
    validation hold-out, so an edited partition function never reads a stale cached split."""
    import importlib.util

    digest = hashlib.sha256()
    for module in (_module_of(target), "fedtna.data.validation", __name__):
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec is not None else None
        digest.update(Path(origin).read_bytes() if origin and Path(origin).is_file() else module.encode())
    return digest.hexdigest()[:16]


def _module_of(target: str) -> str:
    """The module that holds ``target`` (``pkg.mod.function`` or ``pkg.mod.Class.method``)."""
    import importlib.util

    parts = target.split(".")
    for end in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:end])
        try:
            if importlib.util.find_spec(module) is not None:
                return module
        except (ImportError, ValueError):
            continue
    return target


def _split_key(dataset_key: str, partition_key: str, num_clients: int, seed: int, validation_fraction: float,
               run_seed: int) -> str:
    """Everything that determines a split: the labels' digest (a folder's files may change), the partition
    spec, the code that draws it and the versions of flwr-datasets and numpy (their random streams)."""
    labels = hashlib.sha256(_bundle(dataset_key).train_y.numpy().tobytes()).hexdigest()[:16]
    held_out = f"validation-{validation_fraction}/{run_seed}/" if validation_fraction else ""
    code = source_digest(json.loads(partition_key)["node"]["_target_"])
    return (f"partition/{dataset_key}/labels-{labels}/{partition_key}/{num_clients}/{seed}/{held_out}"
            f"code-{code}/flwr-datasets-{version('flwr-datasets')}/numpy-{np.__version__}")


@lru_cache(maxsize=4)
def _stored_split(*arguments: Any) -> StoredPartitioning:
    flat, bounds = cached_arrays(f"{_split_key(*arguments)}/all",
                                 lambda: StoredPartitioning.of(_partitions(*arguments)).arrays())
    return StoredPartitioning(flat, bounds)


def _partitioning(dataset_key: str, partition_key: str, num_clients: int, seed: int, validation_fraction: float,
                  run_seed: int) -> Sequence[np.ndarray]:
    arguments = (dataset_key, partition_key, num_clients, seed, validation_fraction, run_seed)
    if num_clients <= STORED_SPLIT_MAX_CLIENTS:
        return _stored_split(*arguments)
    return _partitions(*arguments)


def all_partitions(config: RunConfig) -> Sequence[np.ndarray]:
    """Every client's train indices, identical for the same seed (lazy above STORED_SPLIT_MAX_CLIENTS)."""
    return _partitioning(*_partition_args(config))


def _partition_args(config: RunConfig) -> tuple[str, str, int, int, float, int]:
    return (_key(config.dataset_spec), _key(config.partition_spec), config.num_clients, partition_seed(config.seed),
            config.validation_fraction, config.seed)


def _client_indices(dataset_key: str, partition_key: str, num_clients: int, seed: int, validation_fraction: float,
                    run_seed: int, partition_id: int) -> np.ndarray:
    """One client's indices; a fresh process (deployment) reads them from the disk cache."""
    arguments = (dataset_key, partition_key, num_clients, seed, validation_fraction, run_seed)
    if num_clients <= STORED_SPLIT_MAX_CLIENTS:
        return _stored_split(*arguments)[partition_id]
    (indices,) = cached_arrays(f"{_split_key(*arguments)}/{partition_id}",
                               lambda: [_partitions(*arguments)[partition_id]])
    return indices


@lru_cache(maxsize=64)
def _client_tensors(dataset_key: str, partition_key: str, num_clients: int, seed: int, validation_fraction: float,
                    run_seed: int, partition_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    bundle = _bundle(dataset_key)
    indices = torch.from_numpy(_client_indices(dataset_key, partition_key, num_clients, seed, validation_fraction,
                                               run_seed, partition_id))
    return bundle.train_x[indices].contiguous(), bundle.train_y[indices].contiguous()


def client_data(config: RunConfig, partition_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of one client's partition as in-memory tensors."""
    return _client_tensors(*_partition_args(config), partition_id)
