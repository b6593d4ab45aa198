"""Datasets as in-memory tensors, client partitions of them, and a plot of the result."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedtna.config.targets import TargetSpec
from fedtna.data.bundle import DatasetBundle
from fedtna.data.partition import partition_dataset
from fedtna.data.plot import label_counts, plot_label_distribution
from fedtna.errors import ConfigError

__all__ = ["DatasetBundle", "label_counts", "load_dataset", "partition_dataset", "plot_label_distribution"]


def load_dataset(spec: TargetSpec | Mapping[str, Any]) -> DatasetBundle:
    """Call the loader the config's `_target_` names, so a new dataset is one function + one YAML."""
    spec = TargetSpec.coerce("dataset", spec)
    bundle = spec.call()
    if not isinstance(bundle, DatasetBundle):
        raise TypeError(f"dataset loader returned {type(bundle).__name__}, expected DatasetBundle")
    declared = spec.arguments.get("num_classes")
    if declared is not None and declared != bundle.num_classes:
        raise ConfigError(
            f"dataset.num_classes={declared} but the {bundle.name} data has {bundle.num_classes} classes; "
            "fix num_classes or set it to null"
        )
    return bundle
