"""Start-up and per-round cost against the number of simulated clients, side by side in one run.

For 10 / 10,000 / 100,000 clients (10 sampled per round, the MLP, the same 120,000 synthetic
28x28 images split IID) it runs ``python -m fedtna.run`` and prints: seconds from launch to
the start of round 1, seconds per round after round 1, and the peak memory of the whole
process tree (the run and every process its engine starts), sampled from /proc every 0.2 s.

    python benchmarks/scale.py [--engine local|ray] [clients ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
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


def measure(num_clients: int, engine: str, rounds: int = 4) -> dict[str, float]:
    """One run; its start-up, steady s/round and peak tree memory."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"fedtna-scale-{num_clients}-"))
    overrides = [f"simulation.backend={engine}", "dataset=synthetic", "dataset.num_train=120000",
                 "dataset.num_test=2000", "dataset.channels=1", "dataset.height=28", "dataset.width=28", "model=mlp",
                 "partition=iid", f"num_clients={num_clients}",
                 f"fraction_train={10 / num_clients}", f"num_rounds={rounds}", "progress=false", "print_config=false",
                 "save_model=false", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "FEDTNA_CACHE_DIR": "off"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "fedtna.run", *overrides], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak, first_row_at = 0, None

    def watch() -> None:
        nonlocal peak, first_row_at
        metrics = run_dir / "metrics.jsonl"
        while process.poll() is None:
            peak = max(peak, tree_rss(process.pid))
            if first_row_at is None and metrics.is_file() and metrics.read_text().strip():
                first_row_at = time.perf_counter() - started
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, stderr = process.communicate()
    watcher.join()
    if process.returncode != 0:
        raise RuntimeError(f"{num_clients} clients failed:\n{stderr[-2000:]}")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {"clients": num_clients, "to_round_1_s": (first_row_at or 0.0) - rows[0]["seconds"],
            "round_1_s": rows[0]["seconds"], "s_per_round": sum(r["seconds"] for r in rows[1:]) / (len(rows) - 1),
            "peak_gb": peak / 1e9, "total_s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="local")
    parser.add_argument("clients", nargs="*", type=int, default=[10, 10000, 100000])
    args = parser.parse_args()
    results = [measure(count, args.engine) for count in args.clients]
    print(f"{'clients':>8} {'to round 1 s':>13} {'round 1 s':>10} {'s/round':>8} {'peak GB':>8} {'total s':>8}")
    for r in results:
        print(f"{r['clients']:>8} {r['to_round_1_s']:>13.1f} {r['round_1_s']:>10.1f} {r['s_per_round']:>8.2f} "
              f"{r['peak_gb']:>8.2f} {r['total_s']:>8.1f}")
    base = results[0]
    for r in results[1:]:
        print(f"RATIO {r['clients']} / {base['clients']} clients: "
              f"start-up {r['to_round_1_s'] / base['to_round_1_s']:.2f}, "
              f"peak memory {r['peak_gb'] / base['peak_gb']:.2f}")


if __name__ == "__main__":
    main()
