"""FedAvg: every sampled client trains all weights; sample-size-weighted mean."""

from __future__ import annotations

from fedtna.fl.strategies.base import SeededStrategy


class FedAvg(SeededStrategy):
    """McMahan et al. 2017, with fedtna's seeded sampling and exact aggregation."""

    default_schedule = "full"
