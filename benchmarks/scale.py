"""Start-up and per-round cost against the number of simulated clients, side by side in one run.

For 10 / 10,000 / 100,000 clients (10 sampled per round, the MLP, the same 120,000 synthetic
28x28 images split IID) it runs ``python -m fedtna.run`` and prints: seconds from launch to
the start of round 1, seconds per round after round 1, and the peak memory of the whole
process tree (the run and every process its engine starts), sampled from /proc every 0.2 s.

    python benchmarks/scale.py [--engine local|ray] [clients ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from process_watch import watch


def measure(num_clients: int, engine: str, rounds: int = 4) -> dict[str, float]:
    """One run; its start-up, steady s/round and peak tree memory."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"fedtna-scale-{num_clients}-"))
    overrides = [f"simulation.backend={engine}", "dataset=synthetic", "dataset.num_train=120000",
                 "dataset.num_test=2000", "dataset.channels=1", "dataset.height=28", "dataset.width=28", "model=mlp",
                 "partition=iid", f"num_clients={num_clients}",
                 f"fraction_train={10 / num_clients}", f"num_rounds={rounds}", "progress=false", "print_config=false",
                 "save_model=false", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "FEDTNA_CACHE_DIR": "off"}
    run = watch([sys.executable, "-m", "fedtna.run", *overrides], run_dir / "metrics.jsonl", every_s=0.2, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"{num_clients} clients failed:\n{run.stderr[-2000:]}")
    first_row_at, peak = run.first_row_s, run.peak_bytes
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {"clients": num_clients, "to_round_1_s": (first_row_at or 0.0) - rows[0]["seconds"],
            "round_1_s": rows[0]["seconds"], "s_per_round": sum(r["seconds"] for r in rows[1:]) / (len(rows) - 1),
            "peak_gb": peak / 1e9, "total_s": run.wall_s}


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
