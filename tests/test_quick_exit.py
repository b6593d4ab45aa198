"""fedtna's commands freeze the heap at exit, so Python's last collection skips torch's objects."""

from __future__ import annotations

import contextlib
import subprocess
import sys

PROBE = """
import atexit, gc
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0))  # runs after the freeze (LIFO)
from fedtna.quick_exit import skip_final_collection
skip_final_collection()
skip_final_collection()  # once per process
atexit.register(lambda: print("before the freeze:", gc.get_freeze_count() == 0))
"""


def test_the_heap_is_frozen_after_every_other_exit_handler() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:2] == ["before the freeze: True", "frozen at exit: True"]


def test_the_command_entry_registers_it(monkeypatch) -> None:
    import fedtna.quick_exit as quick_exit

    registered: list = []
    monkeypatch.setattr(quick_exit, "_REGISTERED", [])
    monkeypatch.setattr(quick_exit.atexit, "register", registered.append)
    from fedtna.config.entry import hydra_entry

    entry = hydra_entry("config", lambda cfg: cfg, lambda config: None)
    monkeypatch.setattr(sys, "argv", ["fedtna.run", "--help"])
    with contextlib.suppress(SystemExit):
        entry()
    assert quick_exit.gc.freeze in registered  # other handlers may register during a first import
