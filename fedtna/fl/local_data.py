"""The run's dataset and every client's partition of it, loaded once per process."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from importlib.metadata import version

import numpy as np
import torch

from fedtna.config.schema import RunConfig, TrainingKeys
from fedtna.config.targets import TargetSpec
from fedtna.data import DatasetBundle, load_dataset, partition_dataset
from fedtna.data.partition import Partitioning, StoredPartitioning
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


@lru_cache(maxsize=4)
def _partitions(dataset_key: str, partition_key: str, num_clients: int, seed: int) -> Partitioning:
    labels = _bundle(dataset_key).train_y.numpy()
    return partition_dataset(_spec("partition", partition_key), labels, num_clients, seed)


STORED_SPLIT_MAX_CLIENTS = 200
"""Up to this many clients the whole split is kept in the disk cache, so a later run with the same
dataset, partition, clients and seed neither imports flwr-datasets nor draws again (seconds per run);
above it clients read their own partition lazily."""


def _split_key(dataset_key: str, partition_key: str, num_clients: int, seed: int) -> str:
    """Everything that determines a split, the labels' digest included (a folder's files may change)."""
    labels = hashlib.sha256(_bundle(dataset_key).train_y.numpy().tobytes()).hexdigest()[:16]
    return (f"partition/{dataset_key}/labels-{labels}/{partition_key}/{num_clients}/{seed}/"
            f"flwr-datasets-{version('flwr-datasets')}")


@lru_cache(maxsize=4)
def _stored_split(dataset_key: str, partition_key: str, num_clients: int, seed: int) -> StoredPartitioning:
    flat, bounds = cached_arrays(f"{_split_key(dataset_key, partition_key, num_clients, seed)}/all", lambda: (
        StoredPartitioning.of(_partitions(dataset_key, partition_key, num_clients, seed)).arrays()))
    return StoredPartitioning(flat, bounds)


def _split(dataset_key: str, partition_key: str, num_clients: int, seed: int) -> Sequence[np.ndarray]:
    if num_clients <= STORED_SPLIT_MAX_CLIENTS:
        return _stored_split(dataset_key, partition_key, num_clients, seed)
    return _partitions(dataset_key, partition_key, num_clients, seed)


def all_partitions(config: RunConfig) -> Sequence[np.ndarray]:
    """Every client's train indices, identical for the same seed (lazy above STORED_SPLIT_MAX_CLIENTS)."""
    return _split(_key(config.dataset_spec), _key(config.partition_spec), config.num_clients,
                  partition_seed(config.seed))


def _client_indices(dataset_key: str, partition_key: str, num_clients: int, seed: int, partition_id: int) -> np.ndarray:
    """One client's indices; a fresh process (deployment) reads them from the disk cache."""
    if num_clients <= STORED_SPLIT_MAX_CLIENTS:
        return _stored_split(dataset_key, partition_key, num_clients, seed)[partition_id]
    key = f"{_split_key(dataset_key, partition_key, num_clients, seed)}/{partition_id}"
    (indices,) = cached_arrays(key, lambda: [_partitions(dataset_key, partition_key, num_clients, seed)[partition_id]])
    return indices


@lru_cache(maxsize=64)
def _client_tensors(dataset_key: str, partition_key: str, num_clients: int, seed: int,
                    partition_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    bundle = _bundle(dataset_key)
    indices = torch.from_numpy(_client_indices(dataset_key, partition_key, num_clients, seed, partition_id))
    return bundle.train_x[indices].contiguous(), bundle.train_y[indices].contiguous()


def client_data(config: RunConfig, partition_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of one client's partition as in-memory tensors."""
    return _client_tensors(_key(config.dataset_spec), _key(config.partition_spec), config.num_clients,
                           partition_seed(config.seed), partition_id)
