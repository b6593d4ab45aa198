"""Engines side by side: each scenario as a whole ``python -m fedtna.run`` process under every engine.

    python benchmarks/engines.py [--repeats 1] [--scenarios NAME ...] [--workers]

Scenarios: the default experiment at 3 and 10 rounds (paper CNN, and the MLP at 10), 5 rounds of
``+experiment=drift`` with the MLP and the CNN, and an 8-job multirun of 2-round runs. Engines:
``ray`` (Flower's simulation engine), ``local`` (clients in the server's process), ``vectorized``
(each round's clients as one batched model), and with ``--workers`` ``local x2`` (two worker
processes). The multirun compares today's way (Ray, the basic launcher: Ray starts per job) with
the local engines, one job after another and two at a time (joblib).

For every run: seconds from launch until round 1 ended (its metrics row appeared), median s/round
after round 1, the whole process's wall seconds, and the peak memory of the process tree (every
process the run starts, sampled from /proc every 0.1 s); then each engine's ratio to ``ray`` and the
issue's targets. Runs alternate engines within a repeat (the machine may be shared: medians count).
The partition of each scenario is drawn once before timing, so every engine reads it from the disk
cache as a repeated run does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from process_watch import Watched, watch

ENGINES = {
    "ray": ["simulation.backend=ray"],
    "local": ["simulation.backend=local"],
    "vectorized": ["simulation.backend=vectorized"],
}
WORKERS = {"local x2": ["simulation.backend=local", "simulation.local_workers=2"]}
SCENARIOS = {
    "default 3 rounds": ["num_rounds=3"],
    "default 10 rounds": [],
    "default 10 rounds mlp": ["model=mlp"],
    "drift 5 rounds": ["+experiment=drift", "num_rounds=5"],
    "drift 5 rounds mlp": ["+experiment=drift", "num_rounds=5", "model=mlp"],
}
MULTIRUN_SEEDS = range(8)
MULTIRUN = ["-m", f"seed={','.join(map(str, MULTIRUN_SEEDS))}", "num_rounds=2", "model=mlp"]
MULTIRUN_VARIANTS = {
    "today (ray, basic)": ["simulation.backend=ray"],
    "local, basic": ["simulation.backend=local"],
    "local, joblib x2": ["simulation.backend=local", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "vectorized, joblib x2": ["simulation.backend=vectorized", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
}
TARGETS = [  # (scenario, engine, at most this ratio to ray)
    ("default 3 rounds", "local", 0.6),
    ("default 10 rounds mlp", "vectorized", 0.3),
    ("default 10 rounds", "vectorized", 0.7),
]
MULTIRUN_TARGET = 0.5
QUIET = ["progress=false", "print_config=false", "save_model=false"]


@dataclass
class Samples:
    """One (scenario, engine)'s measurements over repeats."""

    wall: list[float] = field(default_factory=list)
    to_round_1: list[float] = field(default_factory=list)
    per_round: list[float] = field(default_factory=list)
    peak_gb: list[float] = field(default_factory=list)
    final: set[float] = field(default_factory=set)

    def add(self, run: Watched, run_dir: Path | None) -> None:
        self.wall.append(run.wall_s)
        self.peak_gb.append(run.peak_bytes / 1e9)
        if run_dir is None:
            return
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        self.to_round_1.append(run.first_row_s if run.first_row_s is not None else float("nan"))
        self.per_round.append(statistics.median(row["seconds"] for row in rows[1:]) if len(rows) > 1 else 0.0)
        self.final.add(json.loads((run_dir / "summary.json").read_text())["final_test_accuracy"])

    @staticmethod
    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")


def fedtna_run(arguments: list[str], first_row_file: Path | None) -> Watched:
    run = watch([sys.executable, "-m", "fedtna.run", *arguments], first_row_file)
    if run.returncode != 0:
        sys.exit(f"error: python -m fedtna.run {' '.join(arguments)} exited {run.returncode}:\n{run.stderr[-3000:]}")
    return run


def warm_partition_cache(overrides: list[str]) -> None:
    """Draw the scenario's split once, so no engine pays the first draw (a later run reads the cache)."""
    code = ("import sys, tempfile; from fedtna.config.entry import compose_run_config; "
            "from fedtna.fl.local_data import all_partitions; "
            "all_partitions(compose_run_config(sys.argv[1:], tempfile.mkdtemp()))")
    subprocess.run([sys.executable, "-c", code, *overrides], check=True)


def ratio_line(name: str, samples: dict[str, Samples]) -> None:
    ray = samples["ray"]
    print(f"\n{name}", flush=True)
    print(f"  {'engine':22s} {'to round 1 s':>12s} {'s/round':>8s} {'process s':>10s} {'ratio':>6s} "
          f"{'peak GB':>8s}  final accuracy")
    for engine, sample in samples.items():
        wall = Samples.median(sample.wall)
        print(f"  {engine:22s} {Samples.median(sample.to_round_1):12.1f} {Samples.median(sample.per_round):8.2f} "
              f"{wall:10.1f} {wall / Samples.median(ray.wall):6.2f} {Samples.median(sample.peak_gb):8.2f}  "
              f"{sorted(round(value, 4) for value in sample.final) if sample.final else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--scenarios", nargs="*", default=[*SCENARIOS, "multirun"],
                        help=f"any of {[*SCENARIOS, 'multirun']}")
    parser.add_argument("--workers", action="store_true", help="also local with two worker processes")
    args = parser.parse_args()
    engines = {**ENGINES, **(WORKERS if args.workers else {})}
    unknown = sorted(set(args.scenarios) - {*SCENARIOS, "multirun"})
    if unknown:
        sys.exit(f"error: unknown scenarios {unknown}; choose from {[*SCENARIOS, 'multirun']}")
    results: dict[str, dict[str, Samples]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in [scenario for scenario in SCENARIOS if scenario in args.scenarios]:
            warm_partition_cache(SCENARIOS[name])
            results[name] = {engine: Samples() for engine in engines}
            for repeat in range(args.repeats):
                for engine, overrides in engines.items():
                    run_dir = Path(scratch) / f"{name}-{engine}-{repeat}".replace(" ", "_")
                    run = fedtna_run([*SCENARIOS[name], *overrides, *QUIET, f"hydra.run.dir={run_dir}"],
                                     run_dir / "metrics.jsonl")
                    results[name][engine].add(run, run_dir)
                    print(f"{name} / {engine} (repeat {repeat}): process {run.wall_s:.1f} s", flush=True)
            ratio_line(name, results[name])  # at once, and again with the others at the end
        if "multirun" in args.scenarios:
            for seed in MULTIRUN_SEEDS:
                warm_partition_cache([f"seed={seed}", "num_rounds=2", "model=mlp"])
            results["multirun"] = {variant: Samples() for variant in MULTIRUN_VARIANTS}
            for repeat in range(args.repeats):
                for variant, overrides in MULTIRUN_VARIANTS.items():
                    slug = "".join(c if c.isalnum() else "-" for c in variant)  # no '=' or ',' in an override value
                    sweep_dir = Path(scratch) / f"multirun-{repeat}-{slug}"
                    run = fedtna_run([*MULTIRUN, *overrides, *QUIET, f"hydra.sweep.dir={sweep_dir}"], None)
                    results["multirun"][variant].add(run, None)
                    print(f"8-job multirun / {variant} (repeat {repeat}): process {run.wall_s:.1f} s", flush=True)
    for name, samples in results.items():
        if name == "multirun":
            today = Samples.median(samples["today (ray, basic)"].wall)
            print("\n8-job multirun of 2-round runs (MLP)")
            print(f"  {'variant':22s} {'process s':>10s} {'ratio':>6s} {'peak GB':>8s}")
            for variant, sample in samples.items():
                wall = Samples.median(sample.wall)
                print(f"  {variant:22s} {wall:10.1f} {wall / today:6.2f} {Samples.median(sample.peak_gb):8.2f}")
        else:
            ratio_line(name, samples)
    print("\ntargets (whole process, ratio to ray):")
    for name, engine, limit in TARGETS:
        if name in results and engine in results[name]:
            ratio = Samples.median(results[name][engine].wall) / Samples.median(results[name]["ray"].wall)
            print(f"  {name}, {engine}: {ratio:.2f} (target <= {limit}): {'met' if ratio <= limit else 'MISSED'}")
    if "multirun" in results:
        best = min(Samples.median(sample.wall) for variant, sample in results["multirun"].items()
                   if not variant.startswith("today"))
        ratio = best / Samples.median(results["multirun"]["today (ray, basic)"].wall)
        print(f"  8-job multirun, fastest local variant: {ratio:.2f} (target <= {MULTIRUN_TARGET}): "
              f"{'met' if ratio <= MULTIRUN_TARGET else 'MISSED'}")
    exact = {engine: sample.final for engine, sample in results.get("default 3 rounds", {}).items()
             if engine != "vectorized"}
    if exact and len(set().union(*exact.values())) != 1:
        sys.exit("error: ray and local reached different final accuracies")


if __name__ == "__main__":
    main()
