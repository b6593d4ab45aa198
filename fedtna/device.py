"""Resolve the ``device`` key (auto / cpu / cuda / cuda:N) to a torch device."""

from __future__ import annotations

import torch

from fedtna.errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when this process sees a GPU, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r} but no CUDA GPU is visible; use device=auto or device=cpu")
        return torch.device(name)
    raise ConfigError(f"device={name!r} is not one of {list(DEVICE_CHOICES)} (or cuda:N)")
