"""Model soups (Wortsman et al. 2022): average fine-tuned copies of one model.

The uniform soup averages all K models. The greedy soup ranks the models by accuracy on
held-out training data, starts from the best, and adds each next model only if the soup's
held-out accuracy does not drop. Choices use held-out data only; the test set only reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fedtna.fusion.interpolation import Measurement, StateDict, average_states

Meter = Callable[[StateDict], Measurement]


@dataclass(frozen=True)
class Soup:
    """Which models went in, and how the averaged model does on held-out and test data."""

    ingredients: list[int]
    holdout_accuracy: float
    test_accuracy: float
    test_loss: float


def _cook(states: Sequence[StateDict], ingredients: list[int], holdout: Meter, test: Meter) -> Soup:
    soup = average_states([states[k] for k in ingredients])
    tested = test(soup)
    return Soup(ingredients=sorted(ingredients), holdout_accuracy=holdout(soup).accuracy,
                test_accuracy=tested.accuracy, test_loss=tested.loss)


def uniform_soup(states: Sequence[StateDict], holdout: Meter, test: Meter) -> Soup:
    """All models averaged."""
    return _cook(states, list(range(len(states))), holdout, test)


def greedy_soup(states: Sequence[StateDict], holdout: Meter, test: Meter) -> Soup:
    """Models in order of held-out accuracy (ties: lower index first), each kept if the soup does not get worse."""
    scores = [holdout(state).accuracy for state in states]
    order = sorted(range(len(states)), key=lambda k: (-scores[k], k))
    chosen, best = [order[0]], scores[order[0]]
    for k in order[1:]:
        accuracy = holdout(average_states([states[i] for i in [*chosen, k]])).accuracy
        if accuracy >= best:
            chosen, best = [*chosen, k], accuracy
    return _cook(states, chosen, holdout, test)


def best_single(states: Sequence[StateDict], holdout: Meter, test: Meter) -> Soup:
    """The one model with the best held-out accuracy: the baseline a soup must beat."""
    scores = [holdout(state).accuracy for state in states]
    return _cook(states, [max(range(len(states)), key=lambda k: (scores[k], -k))], holdout, test)
