"""Typed access to the records of fedtna's messages.

Flower types each record of a RecordDict as ``ArrayRecord | MetricRecord | ConfigRecord`` and a
metric or config value as a scalar or a list. fedtna's messages have a fixed layout (``arrays``:
the model, ``config``: the round plan, ``metrics``: the client's scalar metrics), so these helpers
state it once for the type checker; they neither copy nor check anything at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from flwr.app import ArrayRecord, RecordDict

Scalar = int | float


def array_record(content: RecordDict, key: str) -> ArrayRecord:
    """The ArrayRecord ``key`` of a message's content."""
    return cast(ArrayRecord, content[key])


def scalars(content: RecordDict, key: str) -> Mapping[str, Scalar]:
    """The MetricRecord or ConfigRecord ``key`` of a message's content, read for its numbers."""
    return cast(Mapping[str, Scalar], content[key])
