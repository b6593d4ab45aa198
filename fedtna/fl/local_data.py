"""The run's dataset and every client's partition of it, loaded once per process."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.metadata import version

import numpy as np
import torch

from fedtna.config.schema import RunConfig, TrainingKeys
from fedtna.config.targets import TargetSpec
from fedtna.data import DatasetBundle, load_dataset, partition_dataset
from fedtna.data.partition import Partitioning
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


def all_partitions(config: RunConfig) -> Partitioning:
    """Every client's train indices (read lazily), identical for the same seed."""
    return _partitions(_key(config.dataset_spec), _key(config.partition_spec), config.num_clients,
                       partition_seed(config.seed))


def _client_indices(dataset_key: str, partition_key: str, num_clients: int, seed: int, partition_id: int) -> np.ndarray:
    """One client's indices; a fresh process (deployment) reads them from the disk cache."""
    key = (f"partition/{dataset_key}/{partition_key}/{num_clients}/{seed}/{partition_id}/"
           f"flwr-datasets-{version('flwr-datasets')}")
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
