"""FedProx: FedAvg whose clients add mu/2 * ||w - w_global||^2 to their loss."""

from __future__ import annotations

from fedtna.fl.strategies.base import SeededStrategy


class FedProx(SeededStrategy):
    """Li et al. 2020 (arXiv 1812.06127); mu = 0 is exactly FedAvg.

    Unlike the base class, mu has no default: a FedProx config must say it.
    """

    default_schedule = "full"

    def __init__(self, *, proximal_mu: float, **options: object) -> None:
        super().__init__(proximal_mu=proximal_mu, **options)  # type: ignore[arg-type]  # pass-through kwargs
