"""Seeded fault injection: which client crashes, replies NaN or straggles in which round (off by default).

A fault is a pure function of (round seed, partition id, probabilities), so a run, its
resumption and a test that recounts the faults all agree.
"""

from __future__ import annotations

import random
from enum import Enum

from fedtna.config.schema import FaultSettings
from fedtna.masks import derive_seed


class Fault(Enum):
    """What an injected fault does to one client's round."""

    NONE = "none"
    CRASH = "crash"
    NAN = "nan"
    DELAY = "delay"


class InjectedCrash(RuntimeError):
    """Raised inside a ClientApp by fault injection (``faults.crash``)."""


def fault_for(round_seed: int, partition_id: int, faults: FaultSettings) -> Fault:
    """The fault of this client in this round: crash with probability ``crash``, NaN with ``nan``,
    a ``delay_seconds`` sleep before training with ``delay`` (one draw, so adding ``delay`` keeps
    which clients crash or reply NaN)."""
    if faults.crash <= 0.0 and faults.nan <= 0.0 and faults.delay <= 0.0:
        return Fault.NONE
    draw = random.Random(derive_seed(round_seed, "fault", partition_id)).random()
    if draw < faults.crash:
        return Fault.CRASH
    if draw < faults.crash + faults.nan:
        return Fault.NAN
    if draw < faults.crash + faults.nan + faults.delay:
        return Fault.DELAY
    return Fault.NONE
