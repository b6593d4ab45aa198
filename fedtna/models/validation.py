"""Argument checks shared by the model constructors, so bad configs fail with one clear line."""

from __future__ import annotations

from collections.abc import Sequence

from fedtna.errors import ConfigError


class ModelConfigError(ConfigError, ValueError):
    """A model hyperparameter or input shape the architecture cannot accept."""


def checked_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """Return (channels, height, width) as ints, rejecting anything that is not three positive sizes."""
    shape = tuple(int(size) for size in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ModelConfigError(
            f"input_shape must be three positive sizes (channels, height, width), got {tuple(input_shape)}"
        )
    return shape


def checked_positive(name: str, value: int) -> int:
    """Return value as int if it is at least 1; a zero or negative size would build an empty layer."""
    if int(value) != value or value < 1:
        raise ModelConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
