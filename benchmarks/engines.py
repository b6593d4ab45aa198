"""Engines side by side: the same run as a whole ``python -m fedtna.run`` process under each engine.

    python benchmarks/engines.py [--repeats 3] [overrides ...]     (default: the default experiment, 3 rounds)

Variants, run alternately in fresh processes (the machine may be shared: the medians matter):
``ray`` (Flower's simulation engine), ``local`` (clients in the server's process), ``local x2``
(a pool of two worker processes) and ``vectorized`` (each round's clients as one batched
model). Prints wall seconds of the whole process and of the rounds, and the
ratios to Ray, and each variant's final accuracies (``vectorized`` may differ by float noise).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "ray": ["simulation.backend=ray"],
    "local": ["simulation.backend=local"],
    "local x2": ["simulation.backend=local", "simulation.local_workers=2"],
    "vectorized": ["simulation.backend=vectorized"],
}


def timed_run(overrides: list[str], run_dir: Path) -> tuple[float, dict]:
    """Wall seconds of one whole process, and its summary."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fedtna.run", *overrides, f"hydra.run.dir={run_dir}", "progress=false",
                    "print_config=false"], check=True, capture_output=True)
    wall = time.perf_counter() - started
    return wall, json.loads((run_dir / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*", default=["num_rounds=3"])
    args = parser.parse_args()
    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    rounds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    finals: dict[str, set[float]] = {name: set() for name in VARIANTS}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for name, variant in VARIANTS.items():
                run_dir = Path(scratch) / f"{name.replace(' ', '')}-{repeat}"
                wall, summary = timed_run([*args.overrides, *variant], run_dir)
                walls[name].append(wall)
                rounds[name].append(summary["wall_seconds"])
                finals[name].add(summary["final_test_accuracy"])
                print(f"repeat {repeat} {name:9s} process {wall:6.1f} s  rounds {summary['wall_seconds']:6.1f} s",
                      flush=True)
    ray_wall, ray_rounds = statistics.median(walls["ray"]), statistics.median(rounds["ray"])
    print(f"\n{'engine':9s} {'process s':>10s} {'ratio':>7s} {'rounds s':>9s} {'ratio':>7s}  final accuracy")
    for name in VARIANTS:
        wall, in_rounds = statistics.median(walls[name]), statistics.median(rounds[name])
        print(f"{name:9s} {wall:10.1f} {wall / ray_wall:7.2f} {in_rounds:9.1f} {in_rounds / ray_rounds:7.2f}  "
              f"{sorted(finals[name])}")
    exact = {name: finals[name] for name in VARIANTS if name != "vectorized"}
    if len(set().union(*exact.values())) != 1:
        sys.exit("error: ray and local reached different final accuracies")


if __name__ == "__main__":
    main()
