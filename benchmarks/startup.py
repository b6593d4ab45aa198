"""Fixed start-up of a tiny ``python -m fedtna.run``, phase by phase: before / after fedtna starts Ray itself.

    python benchmarks/startup.py [--repeats 5] [overrides ...]     (default: 2 clients, 2 rounds, MLP)

Each repeat runs both variants in fresh processes, alternating (the machine is shared, so the
medians matter, not one run). A child process follows ``fedtna.run``'s code path (compose,
``run_experiment``'s write_config/prepare/simulate, without Hydra's own ``main`` wrapper) and time-stamps it:

  python + imports   interpreter start and ``import fedtna.run`` (torch, Hydra, the config schema)
  compose            Hydra compose and typed parse
  prepare            range checks, strategy build, data, partition, initial model, label plot
  engine imports     ``simulate`` up to ``ray.init``: Flower's simulation engine, the apps
  Ray start          ``ray.init`` (GCS, API server, raylet, agents)
  actors + round 1   until round 1 is recorded: client actors start, then the first round
  round 2            one steady round, for comparison
  shutdown           last round recorded -> ``simulate`` returns (model.pt, Flower's engine, Ray's shutdown)

Variants: ``before`` lets Flower call ``ray.init`` (with its ``runtime_env`` of ``PYTHONPATH``), as fedtna did
before ``fl/engines/ray.start_ray``; ``after`` is the current code. ``Ray workers`` counts the worker processes
the run's Ray started (its session's worker logs): with a runtime env Ray cannot hand the client actors
the workers it prestarts, so it starts more.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()
T0_WALL = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

TINY = ["num_clients=2", "num_rounds=2", "model=mlp", "progress=false", "print_config=false"]
VARIANTS = ("before", "after")
PHASES = ("python + imports", "compose", "prepare", "  data", "  partition", "  label plot", "engine imports",
          "Ray start", "actors + round 1", "round 2", "shutdown", "  ray.shutdown", "total")


def child(variant: str, output_dir: str, spawned_wall: float, overrides: list[str]) -> None:
    """One timed run; prints one JSON line of phase durations."""
    marks: dict[str, float] = {"start": T0 - (T0_WALL - spawned_wall)}  # perf_counter at spawn

    def mark(name: str) -> None:
        marks.setdefault(name, time.perf_counter())

    def timed(owner: Any, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            mark(f"{name}:start")
            try:
                return original(*args, **kwargs)
            finally:
                mark(f"{name}:end")

        setattr(owner, attribute, wrapper)

    import fedtna.run

    mark("imported")
    from fedtna.config.entry import compose_run_config

    config = compose_run_config(overrides, output_dir)
    mark("composed")
    import fedtna.data
    import fedtna.fl.engines.ray as simulation
    import fedtna.fl.experiment as experiment
    import fedtna.fl.results as results

    timed(experiment, "dataset_bundle", "data")
    timed(experiment, "all_partitions", "partition")
    timed(fedtna.data, "plot_label_distribution", "plot")
    workers: list[int] = []
    record_round = results.RunRecorder.record_round

    def recorded(self: Any, server_round: int, metrics: Any) -> Any:
        mark(f"round{server_round}")
        if not workers:
            workers.append(count_ray_workers())
        return record_round(self, server_round, metrics)

    results.RunRecorder.record_round = recorded
    if variant == "before":  # Flower's RayBackend calls ray.init itself, with its PYTHONPATH runtime_env
        simulation.start_ray = lambda config, backend: {"ray_num_cpus": backend["init_args"]["num_cpus"]}
    experiment.write_config(config)
    mark("prepare:start")
    experiment.prepare(config)
    mark("prepare:end")
    import ray

    timed(ray, "init", "ray_init")
    timed(ray, "shutdown", "ray_shutdown")
    summary = simulation.simulate_on_ray(config)
    mark("end")
    last = f"round{config.num_rounds}"
    phases = {
        "python + imports": marks["imported"] - marks["start"],
        "compose": marks["composed"] - marks["imported"],
        "prepare": marks["prepare:end"] - marks["prepare:start"],
        "  data": marks["data:end"] - marks["data:start"],
        "  partition": marks["partition:end"] - marks["partition:start"],
        "  label plot": marks["plot:end"] - marks["plot:start"],
        "engine imports": marks["ray_init:start"] - marks["prepare:end"],
        "Ray start": marks["ray_init:end"] - marks["ray_init:start"],
        "actors + round 1": marks["round1"] - marks["ray_init:end"],
        "round 2": marks["round2"] - marks["round1"] if "round2" in marks else float("nan"),
        "shutdown": marks["end"] - marks[last],
        "  ray.shutdown": marks["ray_shutdown:end"] - marks["ray_shutdown:start"],
        "total": marks["end"] - marks["start"],
    }
    print("STARTUP " + json.dumps({"variant": variant, "phases": phases, "workers": workers[0] if workers else None,
                                   "status": summary.get("status")}), flush=True)


def count_ray_workers() -> int | None:
    """Worker processes this run's Ray has started so far (one ``worker-*.out`` log each)."""
    try:
        import ray

        # Ray has no public API for its session directory (the state API needs the dashboard): private
        session = Path(ray._private.worker._global_node.get_session_dir_path())
        return len(list((session / "logs").glob("worker-*.out")))
    except Exception:  # noqa: BLE001 - Ray's private layout; the count is only a hint
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("overrides", nargs="*", help=f"fedtna.run overrides (default: {' '.join(TINY)})")
    args = parser.parse_args()
    overrides = args.overrides or TINY
    if not any(item.startswith("num_rounds=") for item in overrides):
        overrides = [*overrides, "num_rounds=2"]
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="fedtna-startup-") as scratch:
        for repeat in range(args.repeats):
            for variant in VARIANTS if repeat % 2 == 0 else reversed(VARIANTS):
                output_dir = str(Path(scratch) / f"{variant}{repeat}")
                command = [sys.executable, __file__, "--child", variant, output_dir, repr(time.time()), *overrides]
                done = subprocess.run(command, capture_output=True, text=True)
                lines = [line for line in done.stdout.splitlines() if line.startswith("STARTUP ")]
                if done.returncode != 0 or not lines:
                    print(f"{variant} run {repeat + 1} failed (exit {done.returncode}):\n{done.stderr[-2000:]}",
                          file=sys.stderr)
                    continue
                result = json.loads(lines[-1][len("STARTUP "):])
                runs[variant].append(result)
                print(f"repeat {repeat + 1}/{args.repeats} {variant:6}: total {result['phases']['total']:.1f} s, "
                      f"Ray start {result['phases']['Ray start']:.1f} s, actors + round 1 "
                      f"{result['phases']['actors + round 1']:.1f} s, Ray workers {result['workers']}", flush=True)
    report(runs, overrides)


def report(runs: dict[str, list[dict[str, Any]]], overrides: list[str]) -> None:
    def median(variant: str, phase: str) -> float:
        values = [run["phases"][phase] for run in runs[variant]]
        return statistics.median(values) if values else float("nan")

    counts = {variant: len(runs[variant]) for variant in VARIANTS}
    print(f"\nmedian seconds over {counts['before']} / {counts['after']} runs; "
          f"python -m fedtna.run {' '.join(overrides)}")
    print(f"{'phase':20}{'before':>9}{'after':>9}{'after - before':>16}")
    for phase in PHASES:
        before, after = median("before", phase), median("after", phase)
        print(f"{phase:20}{before:>9.2f}{after:>9.2f}{after - before:>+16.2f}")
    for variant in VARIANTS:
        workers = sorted({run["workers"] for run in runs[variant]}, key=str)
        print(f"Ray worker processes started ({variant}): {', '.join(map(str, workers))}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5:])
    else:
        main()
