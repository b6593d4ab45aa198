"""Split train-set indices across clients with flwr-datasets partitioners (IID, Dirichlet, pathological)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fedtna.config.targets import TargetSpec
from fedtna.data.client_indices import ClientIndices
from fedtna.errors import ConfigError, out_of_range

if TYPE_CHECKING:
    from flwr_datasets.partitioner import Partitioner

logger = logging.getLogger(__name__)

LABEL_COLUMN = "label"
CLASS_ASSIGNMENT_MODES = ("random", "deterministic", "first-deterministic")


class Partitioning(ClientIndices):
    """Every client's train indices, read lazily: indexing one client costs one partition, not all.

    A flwr-datasets partitioner draws the whole split once (seeded); reading a client's part
    costs a few milliseconds, so 10,000 clients are cheap as long as nobody reads them all.
    """

    def __init__(self, partitioner: Partitioner, labels: np.ndarray, seed: int) -> None:
        from datasets import Dataset

        order = np.random.default_rng(seed).permutation(len(labels))
        # a seeded shuffle: IidPartitioner takes contiguous shards and the label-based partitioners split
        # each class in dataset order, so without it clients would get runs of the original file order
        partitioner.dataset = Dataset.from_dict({LABEL_COLUMN: labels[order], "index": order})
        self._partitioner = partitioner
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self._partitioner.num_partitions)

    def client(self, partition_id: int) -> np.ndarray:
        if partition_id not in self._cache:
            rows = self._partitioner.load_partition(partition_id).with_format("numpy")["index"]
            self._cache[partition_id] = np.sort(np.asarray(rows, dtype=np.int64))
        return self._cache[partition_id]


class StoredPartitioning(ClientIndices):
    """Every client's train indices held as one flat array and its client boundaries (cheap to store)."""

    def __init__(self, flat: np.ndarray, bounds: np.ndarray) -> None:
        if bounds.ndim != 1 or bounds.size < 1 or bounds[0] != 0 or bounds[-1] != flat.size:
            raise ValueError(f"bounds {bounds[:3]}... do not split {flat.size} indices")
        self._flat, self._bounds = flat, bounds

    @classmethod
    def of(cls, partitions: Sequence[np.ndarray]) -> StoredPartitioning:
        """Read every partition once (for a few hundred clients; a lazy Partitioning suits more)."""
        parts = [np.asarray(partitions[i], dtype=np.int64) for i in range(len(partitions))]
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return cls(flat, np.cumsum([0, *(part.size for part in parts)], dtype=np.int64))

    def arrays(self) -> list[np.ndarray]:
        """What a disk cache entry holds: the flat indices and the boundaries."""
        return [self._flat, self._bounds]

    def __len__(self) -> int:
        return int(self._bounds.size - 1)

    def client(self, partition_id: int) -> np.ndarray:
        return self._flat[self._bounds[partition_id]:self._bounds[partition_id + 1]]


def partition_dataset(spec: TargetSpec | Mapping[str, Any], labels: np.ndarray, num_partitions: int,
                      seed: int) -> Partitioning:
    """Run the partition function the config's `_target_` names, so a new scheme is one function + one YAML."""
    return TargetSpec.coerce("partition", spec).call(labels=labels, num_partitions=num_partitions, seed=seed)


def iid(labels: np.ndarray, num_partitions: int, seed: int, **_: Any) -> Partitioning:
    """Equal-sized random shards, each a uniform sample of the train set."""
    from flwr_datasets.partitioner import IidPartitioner  # imported late: flwr-datasets takes seconds to import

    label_array = _check_common(labels, num_partitions, seed)
    return Partitioning(IidPartitioner(num_partitions=num_partitions), label_array, seed)


def dirichlet(
    labels: np.ndarray,
    num_partitions: int,
    seed: int,
    alpha: float,
    min_partition_size: int = 10,
    self_balancing: bool = False,
    **_: Any,
) -> Partitioning:
    """Per class, client shares drawn from Dirichlet(alpha): smaller alpha, more label skew."""
    from flwr_datasets.partitioner import DirichletPartitioner

    label_array = _check_common(labels, num_partitions, seed)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise out_of_range("partition.alpha", alpha, "> 0 (e.g. 0.1 skewed, 100 near-IID)")
    if not _is_int(min_partition_size) or not 0 <= min_partition_size * num_partitions <= len(label_array):
        raise ConfigError(
            f"partition.min_partition_size={min_partition_size!r} is impossible: it must be an integer >= 0 with "
            f"{num_partitions} partitions x min_partition_size <= {len(label_array)} train samples"
        )
    partitioner = DirichletPartitioner(
        num_partitions=num_partitions,
        partition_by=LABEL_COLUMN,
        alpha=float(alpha),
        min_partition_size=int(min_partition_size),
        self_balancing=bool(self_balancing),
        seed=seed,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            partitions = Partitioning(partitioner, label_array, seed)
            partitions[0]  # the partitioner draws (and checks) the whole split on the first read
        except ValueError:  # the partitioner gives up after its maximum number of draws
            raise ConfigError(
                f"partition.min_partition_size={min_partition_size} was not reached by all {num_partitions} "
                f"partitions with alpha={alpha} after {len(_redraws(caught))} Dirichlet draws; "
                "lower min_partition_size or num_partitions, or raise alpha"
            ) from None
    redraws = _redraws(caught)
    for other in caught:
        if other not in redraws:
            warnings.warn(other.message, other.category, stacklevel=2)
    if redraws:
        logger.info("dirichlet partition redrew %d times so every client has >= %d samples", len(redraws),
                    min_partition_size)
    return partitions


def pathological(
    labels: np.ndarray,
    num_partitions: int,
    seed: int,
    classes_per_client: int,
    class_assignment_mode: str = "random",
    **_: Any,
) -> Partitioning:
    """Each client holds only `classes_per_client` classes, each class's samples split among its holders."""
    from flwr_datasets.partitioner import PathologicalPartitioner

    label_array = _check_common(labels, num_partitions, seed)
    present = len(np.unique(label_array))
    if not _is_int(classes_per_client) or classes_per_client < 1:
        raise out_of_range("partition.classes_per_client", classes_per_client, "integers >= 1")
    if classes_per_client > present:
        raise ConfigError(f"partition.classes_per_client={classes_per_client} is more than the {present} classes "
                          "present in the train labels")
    if class_assignment_mode not in CLASS_ASSIGNMENT_MODES:
        raise ConfigError(
            f"partition.class_assignment_mode={class_assignment_mode!r} is not one of {list(CLASS_ASSIGNMENT_MODES)}"
        )
    partitioner = PathologicalPartitioner(
        num_partitions=num_partitions,
        partition_by=LABEL_COLUMN,
        num_classes_per_partition=int(classes_per_client),
        class_assignment_mode=class_assignment_mode,
        seed=seed,
    )
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Classes: .* will NOT be used")
            partitions = Partitioning(partitioner, label_array, seed)
            partitions[0]  # the whole split is drawn on the first read
    except ValueError:  # some class would need more holders than it has samples
        raise ConfigError(
            f"partition.classes_per_client={classes_per_client} with num_partitions={num_partitions}: "
            "a class would be shared by more clients than it has samples; lower num_partitions or classes_per_client"
        ) from None
    _log_unused_samples(partitions, len(label_array))
    return partitions


def _check_common(labels: np.ndarray, num_partitions: int, seed: int) -> np.ndarray:
    """Validate what every scheme shares and return the labels as a 1-D int64 array."""
    label_array = np.asarray(labels)
    if label_array.ndim != 1 or label_array.size == 0 or not np.issubdtype(label_array.dtype, np.integer):
        raise ConfigError(
            f"partition labels must be a non-empty 1-D integer array, got shape {label_array.shape} "
            f"dtype {label_array.dtype}"
        )
    if not _is_int(num_partitions) or not 1 <= num_partitions <= len(label_array):
        raise ConfigError(
            f"num_partitions={num_partitions!r} must be an integer from 1 to {len(label_array)} "
            "(the number of train samples)"
        )
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"seed={seed!r} must be a non-negative integer")
    return label_array.astype(np.int64, copy=False)


def _is_int(value: Any) -> bool:
    """True for Python and numpy integers, but not for bools (YAML `true` must not count as 1)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _redraws(caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    """DirichletPartitioner warns once per rejected draw (some client below min_partition_size)."""
    return [warning for warning in caught if "min_partition_size" in str(warning.message)]


LOGGED_UNUSED_UP_TO = 1000  # counting what is unused reads every partition


def _log_unused_samples(partitions: Partitioning, total: int) -> None:
    """Say how many samples a pathological split left out (classes no client drew in 'random' mode)."""
    if len(partitions) > LOGGED_UNUSED_UP_TO:
        return
    used = sum(len(indices) for indices in partitions)
    if used < total:
        logger.warning("pathological partition left %d of %d train samples unused: no client drew their class",
                       total - used, total)
