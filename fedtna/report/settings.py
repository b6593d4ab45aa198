"""Which config settings tell runs apart: flattening, bookkeeping keys, labels, baseline specs."""

from __future__ import annotations

import fnmatch
import json
import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MISSING = "<missing>"  # the value of a key a run's config does not have

# Keys that never change what a run computes: where it writes, how it reports, where data lives.
BOOKKEEPING = ("seed", "output_dir", "print_config", "progress", "verbose", "wandb.*", "hydra.*", "data_dir",
               "save_model", "device", "eval_batch_size", "round_timeout", "num_threads", "simulation.*", "modes",
               "trusted_packages", "resume", "rerun_diverged", "checkpoint_every")
# Settings of the method itself; every other differing setting is part of the experiment's panel.
METHOD = ("strategy.*", "mask_ratio", "mask.*")


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts become dotted keys; lists become tuples (hashable); empty dicts stay as one key."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = _hashable(value)
    return flat


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True)
    return value


def format_value(value: Any) -> str:
    """How a setting's value is written in labels and matched by ``--baseline key=value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return f"{value:.1f}"
    if isinstance(value, tuple):
        return "[" + ",".join(format_value(item) for item in value) + "]"
    return str(value)


def display_key(key: str) -> str:
    """``strategy.name`` is shown as ``strategy`` (the group the user picked on the command line)."""
    return key[: -len(".name")] if key.endswith(".name") else key


def matches(key: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns)


def is_mask_key(key: str) -> bool:
    """``mask_ratio`` and ``mask.*``: settings that mean nothing to a run without masks."""
    return key == "mask_ratio" or key.startswith("mask.")


def is_method_key(key: str, extra: Sequence[str] = ()) -> bool:
    """Whether a setting is part of the method (strategy, masks, and ``extra``) rather than of the panel."""
    return matches(key, METHOD) or matches(key, tuple(extra))


def differing_keys(configs: Sequence[Mapping[str, Any]], ignore: Sequence[str] = ()) -> list[str]:
    """Keys whose value (MISSING counts as a value) is not the same in every config, in config order."""
    keys = list(dict.fromkeys(key for config in configs for key in config))
    return [key for key in keys if not matches(key, (*BOOKKEEPING, *ignore))
            and len({config.get(key, MISSING) for config in configs}) > 1]


def label_keys(configs: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[str]:
    """The differing keys worth naming.

    A key is left out only when its values follow from the keys already named *and* it is a
    ``_target_``, lies in the config group of a named ``*.name`` key (``strategy.pnu_split`` under
    ``strategy=fedpnu``), or is missing from some runs. ``*.name`` keys are considered first; method
    keys come first in the result (``strategy=fedpnu partition.alpha=0.1``).
    """
    order = sorted(range(len(keys)), key=lambda i: (0 if keys[i].endswith(".name") else
                                                       2 if "_target_" in keys[i] else 1, i))
    named: list[str] = []
    classes = 1
    for index in order:
        key = keys[index]
        split = len({tuple(config.get(k, MISSING) for k in (*named, key)) for config in configs})
        groups = {name[: -len("name")] for name in named if name.endswith(".name")}
        follows = "_target_" in key or key.startswith(tuple(groups)) or any(key not in c for c in configs)
        if split > classes or not follows:
            named.append(key)
            classes = split
    in_order = [key for key in keys if key in named]
    return [key for key in in_order if is_method_key(key)] + [key for key in in_order if not is_method_key(key)]


def label(config: Mapping[str, Any], keys: Iterable[str]) -> str:
    """``strategy=fedpnu partition.alpha=0.1``: the named keys this config has."""
    return " ".join(f"{display_key(key)}={format_value(config[key])}" for key in keys if key in config)


@dataclass(frozen=True)
class Selector:
    """``key=value [key=value ...]`` as given to ``--baseline``; ``strategy`` means ``strategy.name``."""

    text: str
    pairs: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str) -> Selector:
        pairs = []
        for item in text.split():
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"--baseline {text!r}: expected key=value, e.g. strategy=fedavg")
            pairs.append((key, value))
        if not pairs:
            raise ValueError("--baseline is empty: expected key=value, e.g. strategy=fedavg")
        return cls(text, tuple(pairs))

    def selects(self, config: Mapping[str, Any]) -> bool:
        return all(format_value(config.get(self.resolve(key, config), MISSING)) == value
                   for key, value in self.pairs)

    @staticmethod
    def resolve(key: str, config: Mapping[str, Any]) -> str:
        return key if key in config or f"{key}.name" not in config else f"{key}.name"

    def keys(self, config: Mapping[str, Any]) -> set[str]:
        return {self.resolve(key, config) for key, _ in self.pairs}


FL_CONTEXT = ("dataset.name", "model.name", "model.hidden_sizes", "model.width", "partition.name", "partition.alpha",
              "partition.classes_per_client", "num_clients", "fraction_train", "local_epochs", "num_rounds",
              "optimizer", "lr", "momentum", "weight_decay", "batch_size")
LMC_CONTEXT = ("dataset.name", "model.name", "model.hidden_sizes", "model.width", "init", "data_split", "num_models",
               "epochs", "optimizer", "lr", "weight_decay", "batch_size", "mask_ratio", "num_points")


def context(config: Mapping[str, Any], keys: Sequence[str], differing: Sequence[str], width: int = 0) -> str:
    """The informative settings every run shares, e.g. ``dataset=mnist5k model=mlp[200,200] num_clients=10``.

    ``width`` > 0 wraps the text onto lines of at most that many characters (plot titles).
    """
    shown = [key for key in keys if key in config and key not in differing]
    parts = []
    for key in shown:
        if key in ("model.hidden_sizes", "model.width") and "model.name" in shown:
            continue
        value = format_value(config[key])
        if key == "model.name":
            value += "".join(format_value(config[size]) if size == "model.hidden_sizes" else f"×{config[size]}"
                             for size in ("model.hidden_sizes", "model.width") if size in shown)
        parts.append(f"{display_key(key)}={value}")
    text = " ".join(parts)
    return textwrap.fill(text, width, break_long_words=False) if width else text
