"""A small sweep run sequentially (Hydra's basic launcher) and as K parallel jobs (joblib launcher).

Both sweeps are the same ``python -m fedtna.run -m`` command in a fresh process; only the launcher
differs. Each job's Ray gets this machine's CPUs divided by the K jobs running at once (a job reads K
from ``hydra.launcher.n_jobs``; docs/sweeps.md). Prints both walls, the ratio sequential / parallel,
each job's Ray size and whether both sweeps gave identical accuracies. Other load on the machine
skews the ratio: the 1-min load average is printed, and ``--repeats`` alternates the order.

    python benchmarks/sweep_parallel.py                     # 4 runs: fedavg, fedpnu x seeds 0, 1; K = 2
    python benchmarks/sweep_parallel.py --repeats 2          # two pairs in alternating order, median walls
    python benchmarks/sweep_parallel.py --jobs 4 -- num_rounds=10 model=cnn
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = ["strategy=fedavg,fedpnu", "seed=0,1", "num_rounds=5", "model=mlp", "progress=false", "print_config=false"]


def run_sweep(sweep_dir: Path, launcher: list[str], overrides: list[str]) -> tuple[float, list[dict]]:
    """Run one multirun in a fresh process; returns its wall seconds and every job's summary."""
    command = [sys.executable, "-m", "fedtna.run", "-m", *launcher, *overrides, f"hydra.sweep.dir={sweep_dir}"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=sweep_dir.parent)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"sweep failed ({' '.join(command)}):\n{result.stderr[-3000:]}")
    summaries = [json.loads(path.read_text()) for path in sorted(sweep_dir.glob("*/summary.json"))]
    return wall, summaries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="parallel jobs K (hydra.launcher.n_jobs)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="pairs of sweeps, in alternating order (sequential first, then parallel first, ...)")
    parser.add_argument("overrides", nargs="*", help="fedtna overrides replacing the default sweep")
    args = parser.parse_args()
    overrides = args.overrides or SWEEP
    os.environ.setdefault("WANDB_MODE", "disabled")
    launchers = {"sequential": [], "parallel": ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.jobs}"]}
    walls: dict[str, list[float]] = {"sequential": [], "parallel": []}
    results: dict[str, list[dict]] = {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fedtna-sweep-") as tmp:
        for repeat in range(args.repeats):
            order = ["sequential", "parallel"] if repeat % 2 == 0 else ["parallel", "sequential"]
            for name in order:
                wall, summaries = run_sweep(Path(tmp) / f"{name}{repeat}", launchers[name], overrides)
                walls[name].append(wall)
                results.setdefault(name, summaries)
    sequential, parallel = results["sequential"], results["parallel"]
    if len(sequential) != len(parallel) or not sequential:
        sys.exit(f"expected the same number of finished runs, got {len(sequential)} and {len(parallel)}")

    def per_run(summaries: list[dict], key: str) -> float:
        return sum(summary[key] for summary in summaries) / len(summaries)

    print(f"sweep: {' '.join(overrides)}  ({len(sequential)} runs, {os.cpu_count()} CPUs, "
          f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after)")
    print(f"{'':24}{'sequential':>12}{f'n_jobs={args.jobs}':>12}")
    for repeat in range(args.repeats):
        print(f"{f'sweep wall (s), pair {repeat + 1}':24}{walls['sequential'][repeat]:12.1f}"
              f"{walls['parallel'][repeat]:12.1f}   "
              f"ratio {walls['sequential'][repeat] / walls['parallel'][repeat]:.2f}x")
    print(f"{'per run, total (s)':24}{per_run(sequential, 'total_wall_seconds'):12.1f}"
          f"{per_run(parallel, 'total_wall_seconds'):12.1f}")
    print(f"{'per run, rounds (s)':24}{per_run(sequential, 'wall_seconds'):12.1f}"
          f"{per_run(parallel, 'wall_seconds'):12.1f}")
    print(f"{'Ray CPUs per job':24}{sequential[0].get('ray_num_cpus', '?'):>12}"
          f"{parallel[0].get('ray_num_cpus', '?'):>12}")
    ratio = statistics.median(walls["sequential"]) / statistics.median(walls["parallel"])
    print(f"ratio sequential / parallel (median walls): {ratio:.2f}x")
    key = "last5_mean_test_accuracy"
    same = sorted((s["strategy"], s["seed"], s[key]) for s in sequential) == \
        sorted((s["strategy"], s["seed"], s[key]) for s in parallel)
    print(f"identical {key} in both sweeps: {'yes' if same else 'no'}")


if __name__ == "__main__":
    main()
