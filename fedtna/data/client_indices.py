"""``ClientIndices``: a sequence of every client's sorted train indices; subclasses say how one client's are read."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import overload

import numpy as np


class ClientIndices(Sequence[np.ndarray]):
    """Indexing by client (negative ids count from the end) or by slice (a list); out of range is IndexError."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def client(self, partition_id: int) -> np.ndarray:
        """Client ``partition_id``'s sorted indices, for 0 <= partition_id < len(self)."""

    @overload
    def __getitem__(self, partition_id: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, partition_id: slice) -> list[np.ndarray]: ...

    def __getitem__(self, partition_id: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(partition_id, slice):
            return [self.client(i) for i in range(len(self))[partition_id]]
        if not -len(self) <= partition_id < len(self):
            raise IndexError(f"partition {partition_id} of {len(self)}")
        return self.client(partition_id % len(self))
