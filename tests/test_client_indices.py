"""Every kind of client split indexes alike: by client id (negative from the end), by slice, IndexError beyond."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from fedtna.data.client_indices import ClientIndices
from fedtna.data.partition import StoredPartitioning, iid
from fedtna.data.validation import TrainPartitioning, validation_split

LABELS = np.repeat(np.arange(4), 25).astype(np.int64)


def lazy() -> ClientIndices:
    return iid(LABELS, 5, 0)


def stored() -> ClientIndices:
    return StoredPartitioning.of(iid(LABELS, 5, 0))


def train_only() -> ClientIndices:
    split = validation_split(LABELS, 0.2, 0)
    return TrainPartitioning(iid(LABELS[split.train], 5, 0), split.train)


@pytest.mark.parametrize("make", [lazy, stored, train_only])
def test_indexing_is_the_same_for_every_split(make: Callable[[], ClientIndices]) -> None:
    clients = make()
    whole = [clients[i] for i in range(len(clients))]
    assert len(clients) == 5 and isinstance(clients, ClientIndices)
    assert np.array_equal(clients[-1], whole[4]) and np.array_equal(clients[-5], whole[0])
    assert [part.tolist() for part in clients[1:4]] == [part.tolist() for part in whole[1:4]]
    assert [part.tolist() for part in clients[::-2]] == [part.tolist() for part in whole[::-2]]
    assert list(map(np.ndarray.tolist, clients)) == [part.tolist() for part in whole]  # Sequence's iteration
    for beyond in (5, -6):
        with pytest.raises(IndexError, match=f"partition {beyond} of 5"):
            clients[beyond]
