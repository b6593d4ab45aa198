"""Aggregate fedtna.run multirun outputs into a mean ± std table (final and last-5 accuracy).

    python scripts/fl_table.py multirun/fl-alpha0.5 [more sweep dirs ...]

Every run directory (one with summary.json and config.json) is grouped by
strategy and mask_ratio (mask_ratio only for masked strategies); one row per group.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


ORDER = ["fedavg", "fedprox", "fedpfn", "fedpnu"]


def label(config: dict) -> str:
    name = config["strategy"]["name"]
    if config["strategy"]["_target_"].endswith(("FedPFN", "FedPNU")):
        return f"{name} rho={config['mask_ratio']}"
    if float(config["strategy"].get("proximal_mu", 0.0)) > 0:
        return f"{name} mu={config['strategy']['proximal_mu']}"
    return name


def fmt(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * spread:.2f}"


def table(sweep: Path) -> str:
    groups: dict[str, list[dict]] = defaultdict(list)
    for summary_path in sorted(sweep.rglob("summary.json")):
        config = json.loads((summary_path.parent / "config.json").read_text())
        groups[label(config)].append(json.loads(summary_path.read_text()))
    lines = [f"**{sweep.name}**", "", "| method | seeds | final acc (%) | last-5 mean (%) | wall s/run |",
             "|---|---|---|---|---|"]
    for name, runs in sorted(groups.items(), key=lambda item: (ORDER.index(item[0].split()[0]) if item[0].split()[0] in ORDER else len(ORDER), item[0])):
        finals = [run["final_test_accuracy"] for run in runs]
        last5 = [run["last5_mean_test_accuracy"] for run in runs]
        wall = statistics.mean(run.get("total_wall_seconds", run["wall_seconds"]) for run in runs)
        lines.append(f"| {name} | {len(runs)} | {fmt(finals)} | {fmt(last5)} | {wall:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print("\n\n".join(table(Path(arg)) for arg in sys.argv[1:]))
