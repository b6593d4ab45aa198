"""Skip the interpreter's last garbage collection when a fedtna command exits.

With torch (and torch._dynamo, which torch.optim and torch.func import) loaded, Python's final
collection walks millions of objects: about 1.5 s per process on a 2-core machine, paid by every
run of a sweep. Freezing them at exit (``gc.freeze``) leaves them to the operating system, which
reclaims the memory anyway; atexit handlers registered later (logging, wandb, Ray) still run first.
"""

from __future__ import annotations

import atexit
import gc

_REGISTERED: list[bool] = []


def skip_final_collection() -> None:
    """Register ``gc.freeze`` to run at exit (once per process)."""
    if not _REGISTERED:
        atexit.register(gc.freeze)
        _REGISTERED.append(True)
