"""Run the model-fusion experiments of the README and print their markdown tables.

    python scripts/lmc_report.py run [--out multirun/lmc_report] [--seeds 0,1,2] [--models mlp,cnn]
                                     [--only all|main|sweep|why] [fedtna.lmc overrides ...]
    python scripts/lmc_report.py table DIR [DIR ...]     # aggregate lmc.json files found under DIRs

``run`` launches ``python -m fedtna.lmc -m ...`` multiruns (one torch thread each, so a shared
machine stays usable): ``main`` = vanilla vs every mode at rho = 0.4 for both inits, ``sweep`` =
rho from 0 to 0.8 (MLP and CNN; for the CNN TNA-PFN at rho = 0 is the vanilla model), ``why`` =
one-factor MLP runs (epochs, lr, width, shared init). Then it aggregates.

``table`` groups runs by setting (everything but the seed), reports mean ± std over seeds,
the relative barrier reduction of TNA-PFN against vanilla training, and a mask-ratio sweep
wherever a setting was run at several ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SWEEP_RATIOS = "0.0,0.2,0.4,0.6,0.8"
# One factor at a time around the MLP default (epochs=10, lr=0.05, 200-200): why a barrier does or does not shrink.
WHY_RUNS: dict[str, list[str]] = {
    "epochs3": ["epochs=3"],
    "epochs30": ["epochs=30"],
    "lr0.01": ["lr=0.01"],
    "lr0.1": ["lr=0.1"],
    "width50": ["model.hidden_sizes=[50,50]"],
    "width800": ["model.hidden_sizes=[800,800]"],
    "shared_lr0.1": ["init=shared", "lr=0.1"],
    "shared_disjoint": ["init=shared", "data_split=disjoint"],
}
NO_BARRIER = 1e-3  # a vanilla barrier below 0.1 accuracy points / 0.001 loss has nothing to reduce


def multirun(out: Path, name: str, overrides: Sequence[str]) -> Path:
    """One Hydra multirun of fedtna.lmc into out/name."""
    target = out / name
    command = [sys.executable, "-m", "fedtna.lmc", "-m", f"hydra.sweep.dir={target}", "progress=false",
               "num_threads=1", *overrides]
    print("$", " ".join(command[1:]), file=sys.stderr)
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return target


def run_all(out: Path, seeds: str, models: Sequence[str], extra: Sequence[str], parts: str = "all") -> list[Path]:
    """Main comparison (rho = 0.4, both inits) for each model, then the rho sweep for the MLP."""
    targets = []
    if parts in ("all", "main"):
        for model in models:
            targets.append(multirun(out, f"{model}_main", [f"model={model}", f"seed={seeds}", "mask_ratio=0.4",
                                                             "init=independent,shared", *extra]))
    if parts in ("all", "sweep"):
        targets.append(multirun(out, "mlp_sweep", ["model=mlp", f"seed={seeds}", f"mask_ratio={SWEEP_RATIOS}",
                                                   "modes=[vanilla,tna_pfn,prune_init]", *extra]))
        targets.append(multirun(out, "cnn_sweep", ["model=cnn", f"seed={seeds}", f"mask_ratio={SWEEP_RATIOS}",
                                                   "modes=[tna_pfn,prune_init]", *extra]))
    if parts in ("all", "why"):
        for name, overrides in WHY_RUNS.items():
            targets.append(multirun(out, f"why_{name}", ["model=mlp", f"seed={seeds}", "mask_ratio=0.4",
                                                         "modes=[vanilla,tna_pfn]", *overrides, *extra]))
    return targets


def load_runs(directories: Iterable[Path]) -> list[dict[str, Any]]:
    """Every lmc.json under the directories; one run per (setting, seed), modes of repeats merged.

    The same setting and seed train identical models, so a repeat (e.g. rho = 0.4 in both the
    main comparison and the sweep) must count as one sample, not two.
    """
    runs: dict[tuple, dict[str, Any]] = {}
    for directory in directories:
        for path in sorted(Path(directory).rglob("lmc.json")):
            run = json.loads(path.read_text())
            key = setting_of(run["config"]) + (run["config"]["seed"],)
            if key in runs:
                for mode, result in run["modes"].items():
                    runs[key]["modes"].setdefault(mode, result)
            else:
                runs[key] = run
    return list(runs.values())


def model_label(config: dict[str, Any]) -> str:
    """Model name plus its size, e.g. mlp[200, 200] or cnn×1."""
    model = config["model"]
    if "hidden_sizes" in model:
        return f"{model['name']}{model['hidden_sizes']}"
    return f"{model['name']}×{model.get('width', 1)}"


def setting_of(config: dict[str, Any], with_ratio: bool = True) -> tuple:
    """What distinguishes a setting (every seed of it is one sample)."""
    setting = (config["dataset"]["name"], model_label(config), config["init"], config["data_split"],
               config["num_models"], config["epochs"], config["lr"], config["batch_size"])
    return setting + ((config["mask_ratio"],) if with_ratio else ())


def describe(setting: tuple) -> str:
    dataset, model, init, split, num_models, epochs, lr, batch = setting[:8]
    text = f"{dataset} {model} init={init} data={split} K={num_models} ep={epochs} lr={lr} bs={batch}"
    return text + (f" ρ={setting[8]}" if len(setting) > 8 else "")


def mean_std(values: Sequence[float | None], scale: float = 1.0, digits: int = 2) -> str:
    """mean ± std over seeds; runs whose value is null (a diverged model) are counted, not averaged."""
    diverged = sum(value is None for value in values)
    values = [value for value in values if value is not None]
    if not values:
        return f"diverged ({diverged})" if diverged else "–"
    if diverged:
        return f"{mean_std(values, scale, digits)} ({diverged} diverged)"
    mean = statistics.fmean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_values(runs: Sequence[dict[str, Any]], mode: str, key: str) -> list[float | None]:
    return [run["modes"][mode]["summary"][key] for run in runs if mode in run["modes"]]


def fusion_values(runs: Sequence[dict[str, Any]], mode: str, key: str) -> list[float | None]:
    return [run["modes"][mode]["fusion"][key] for run in runs if mode in run["modes"]]


def reduction(runs: Sequence[dict[str, Any]], mode: str, key: str) -> str:
    """1 - mean(mode) / mean(vanilla): the fraction of the vanilla barrier the mode removes."""
    vanilla = [value for value in summary_values(runs, "vanilla", key) if value is not None]
    other = [value for value in summary_values(runs, mode, key) if value is not None]
    if not vanilla or not other or mode == "vanilla" or statistics.fmean(vanilla) < NO_BARRIER:
        return "–"  # nothing to reduce
    return f"{100 * (1 - statistics.fmean(other) / statistics.fmean(vanilla)):.0f}%"


def main_table(runs: Sequence[dict[str, Any]]) -> str:
    """Per setting and mode: endpoint accuracy, barriers (mean ± std over seeds) and fusion."""
    groups: dict[tuple, list] = defaultdict(list)
    for run in runs:
        groups[setting_of(run["config"])].append(run)
    lines = ["| setting | mode | seeds | endpoint acc % | acc barrier (pts) | rel. acc barrier % | loss barrier "
             "| acc-barrier reduction | loss-barrier reduction | fused acc % | mean acc % |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for setting in sorted(groups):
        group = groups[setting]
        modes = list(dict.fromkeys(mode for run in group for mode in run["modes"]))
        for mode in modes:
            count = len(summary_values(group, mode, "loss_barrier_mean"))
            lines.append(
                f"| {describe(setting)} | {mode} | {count} "
                f"| {mean_std(summary_values(group, mode, 'endpoint_accuracy_mean'), 100)} "
                f"| {mean_std(summary_values(group, mode, 'accuracy_barrier_mean'), 100)} "
                f"| {mean_std(summary_values(group, mode, 'accuracy_barrier_relative_mean'), 100, 1)} "
                f"| {mean_std(summary_values(group, mode, 'loss_barrier_mean'), 1, 3)} "
                f"| {reduction(group, mode, 'accuracy_barrier_mean')} "
                f"| {reduction(group, mode, 'loss_barrier_mean')} "
                f"| {mean_std(fusion_values(group, mode, 'fused_accuracy'), 100)} "
                f"| {mean_std(fusion_values(group, mode, 'mean_accuracy'), 100)} |"
            )
    return "\n".join(lines)


def headline_table(runs: Sequence[dict[str, Any]]) -> str:
    """Vanilla against TNA-PFN per setting: the comparison the paper's 60–90% claim is about."""
    groups: dict[tuple, list] = defaultdict(list)
    for run in runs:
        if "vanilla" in run["modes"] and "tna_pfn" in run["modes"]:
            groups[setting_of(run["config"])].append(run)
    lines = ["| setting | seeds | acc barrier vanilla | acc barrier TNA-PFN | reduction | loss barrier vanilla "
             "| loss barrier TNA-PFN | reduction | fused acc vanilla | fused acc TNA-PFN |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for setting in sorted(groups):
        group = groups[setting]
        lines.append(
            f"| {describe(setting)} | {len(group)} "
            f"| {mean_std(summary_values(group, 'vanilla', 'accuracy_barrier_mean'), 100)} "
            f"| {mean_std(summary_values(group, 'tna_pfn', 'accuracy_barrier_mean'), 100)} "
            f"| {reduction(group, 'tna_pfn', 'accuracy_barrier_mean')} "
            f"| {mean_std(summary_values(group, 'vanilla', 'loss_barrier_mean'), 1, 3)} "
            f"| {mean_std(summary_values(group, 'tna_pfn', 'loss_barrier_mean'), 1, 3)} "
            f"| {reduction(group, 'tna_pfn', 'loss_barrier_mean')} "
            f"| {mean_std(fusion_values(group, 'vanilla', 'fused_accuracy'), 100)} "
            f"| {mean_std(fusion_values(group, 'tna_pfn', 'fused_accuracy'), 100)} |"
        )
    return "\n".join(lines) if groups else ""


def sweep_table(runs: Sequence[dict[str, Any]]) -> str:
    """Per setting run at several ratios: barriers and endpoint accuracy against rho."""
    groups: dict[tuple, dict[float, list]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        groups[setting_of(run["config"], with_ratio=False)][float(run["config"]["mask_ratio"])].append(run)
    blocks = []
    for setting in sorted(groups):
        by_ratio = groups[setting]
        if len(by_ratio) < 2:
            continue
        lines = [f"**{describe(setting)}** (mean ± std over seeds)", "",
                 "| ρ | seeds | vanilla acc barrier | TNA-PFN acc barrier | prune-init acc barrier "
                 "| vanilla loss barrier | TNA-PFN loss barrier | TNA-PFN endpoint acc % | prune-init endpoint acc % "
                 "| TNA-PFN fused acc % |",
                 "|---|---|---|---|---|---|---|---|---|---|"]
        for ratio in sorted(by_ratio):
            group = by_ratio[ratio]
            lines.append(
                f"| {ratio} | {len(group)} "
                f"| {mean_std(summary_values(group, 'vanilla', 'accuracy_barrier_mean'), 100)} "
                f"| {mean_std(summary_values(group, 'tna_pfn', 'accuracy_barrier_mean'), 100)} "
                f"| {mean_std(summary_values(group, 'prune_init', 'accuracy_barrier_mean'), 100)} "
                f"| {mean_std(summary_values(group, 'vanilla', 'loss_barrier_mean'), 1, 3)} "
                f"| {mean_std(summary_values(group, 'tna_pfn', 'loss_barrier_mean'), 1, 3)} "
                f"| {mean_std(summary_values(group, 'tna_pfn', 'endpoint_accuracy_mean'), 100)} "
                f"| {mean_std(summary_values(group, 'prune_init', 'endpoint_accuracy_mean'), 100)} "
                f"| {mean_std(fusion_values(group, 'tna_pfn', 'fused_accuracy'), 100)} |"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def report(directories: Iterable[Path]) -> str:
    runs = load_runs(directories)
    if not runs:
        raise SystemExit("error: no lmc.json found under " + ", ".join(str(d) for d in directories))
    return (f"## Vanilla vs TNA-PFN ({len(runs)} runs; barriers in accuracy points, mean ± std over seeds)\n\n"
            f"{headline_table(runs) or '(no run had both vanilla and tna_pfn)'}\n\n"
            f"## Every mode\n\n{main_table(runs)}\n\n## Mask-ratio sweeps\n\n"
            f"{sweep_table(runs) or '(no setting was run at several mask ratios)'}\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="launch the standard multiruns, then print the tables")
    run.add_argument("--out", type=Path, default=REPO / "multirun" / "lmc_report")
    run.add_argument("--seeds", default="0,1,2")
    run.add_argument("--models", default="mlp,cnn")
    run.add_argument("--only", choices=("all", "main", "sweep", "why"), default="all")
    run.add_argument("overrides", nargs="*", help="extra fedtna.lmc overrides, e.g. epochs=20")
    table = commands.add_parser("table", help="aggregate existing runs")
    table.add_argument("directories", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        directories = run_all(args.out, args.seeds, args.models.split(","), args.overrides, args.only)
    else:
        directories = args.directories
    print(report(directories))


if __name__ == "__main__":
    main()
