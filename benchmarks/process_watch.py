"""Run a command and watch it: wall seconds, when its first metrics row appeared, and the peak memory
of its whole process tree (the run and every process its engine starts), sampled from /proc."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants."""
    tree, stack, total = _children(), [root], 0
    while stack:
        pid = stack.pop()
        stack += tree.get(pid, [])
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return total


@dataclass
class Watched:
    """What one watched process did."""

    wall_s: float
    first_row_s: float | None  # seconds from launch until ``first_row_file`` had a line
    peak_bytes: int
    returncode: int
    stderr: str


def watch(command: list[str], first_row_file: Path | None = None, every_s: float = 0.1,
          env: dict[str, str] | None = None) -> Watched:
    """Run ``command`` to its end while sampling its tree's memory and the first row of a file."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    peak, first_row_at = 0, None

    def sample() -> None:
        nonlocal peak, first_row_at
        while process.poll() is None:
            peak = max(peak, tree_rss(process.pid))
            if (first_row_at is None and first_row_file is not None and first_row_file.is_file()
                    and first_row_file.read_text().strip()):
                first_row_at = time.perf_counter() - started
            time.sleep(every_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    wall = time.perf_counter() - started
    sampler.join()
    return Watched(wall, first_row_at, peak, process.returncode, stderr)
