"""The array cache returns what was computed, computes once, and can be switched off."""

from __future__ import annotations

import numpy as np

from fedtna.disk_cache import cached_arrays


def test_computes_once_then_reads_from_disk(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FEDTNA_CACHE_DIR", str(tmp_path))
    calls = []

    def compute() -> list[np.ndarray]:
        calls.append(1)
        return [np.arange(5), np.array([[1.5, 2.5]])]

    first = cached_arrays("key-a", compute)
    second = cached_arrays("key-a", compute)
    assert len(calls) == 1
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(first, second, strict=True))
    cached_arrays("key-b", compute)
    assert len(calls) == 2


def test_off_disables_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FEDTNA_CACHE_DIR", "off")
    calls = []
    for _ in range(2):
        cached_arrays("key", lambda: calls.append(1) or [np.zeros(2)])
    assert len(calls) == 2


def test_a_damaged_entry_is_computed_again_and_replaced(tmp_path, monkeypatch) -> None:
    """An empty or truncated file (a crash while writing) must cost speed, never the run."""
    monkeypatch.setenv("FEDTNA_CACHE_DIR", str(tmp_path))
    cached_arrays("key", lambda: [np.arange(4)])
    (entry,) = tmp_path.glob("*.npz")
    for damage in (b"", entry.read_bytes()[:20]):
        entry.write_bytes(damage)
        (again,) = cached_arrays("key", lambda: [np.arange(4)])
        assert np.array_equal(again, np.arange(4))
        assert np.array_equal(np.load(entry)["a0"], np.arange(4))  # written anew
    assert not list(tmp_path.glob("*.tmp"))
