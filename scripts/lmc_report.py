"""Run the model-fusion experiments of the README, then report them with ``fedtna.report``.

    python scripts/lmc_report.py run [--out multirun/lmc_report] [--seeds 0,1,2] [--models mlp,cnn]
                                     [--only all|main|sweep|why] [fedtna.lmc overrides ...]
    python scripts/lmc_report.py table DIR [DIR ...]     # = python -m fedtna.report DIR [DIR ...] [options]

``run`` launches ``python -m fedtna.lmc -m ...`` multiruns (one torch thread each): ``main`` = every
mode at rho = 0.4 for both inits, ``sweep`` = rho from 0 to 0.8 (MLP and CNN), ``why`` = one-factor
MLP runs (epochs, lr, width, shared init). Then one report over all of them in --out.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from fedtna.report.cli import main as report

REPO = Path(__file__).resolve().parents[1]
SWEEP_RATIOS = "0.0,0.2,0.4,0.6,0.8"
# One factor at a time around the MLP default (epochs=10, lr=0.05, 200-200): why a barrier does or does not shrink.
WHY_RUNS: dict[str, list[str]] = {
    "epochs3": ["epochs=3"], "epochs30": ["epochs=30"], "lr0.01": ["lr=0.01"], "lr0.1": ["lr=0.1"],
    "width50": ["model.hidden_sizes=[50,50]"], "width800": ["model.hidden_sizes=[800,800]"],
    "shared_lr0.1": ["init=shared", "lr=0.1"], "shared_disjoint": ["init=shared", "data_split=disjoint"],
}


def multirun(out: Path, name: str, overrides: Sequence[str]) -> Path:
    """One Hydra multirun of fedtna.lmc into out/name (it ends with its own report)."""
    target = out / name
    command = [sys.executable, "-m", "fedtna.lmc", "-m", f"hydra.sweep.dir={target}", "progress=false",
               "num_threads=1", *overrides]
    print("$", " ".join(command[1:]), file=sys.stderr)
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return target


def run_all(out: Path, seeds: str, models: Sequence[str], extra: Sequence[str], parts: str = "all") -> list[Path]:
    """Main comparison (rho = 0.4, both inits) per model, the rho sweeps, the one-factor MLP runs."""
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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="launch the standard multiruns, then report them")
    run.add_argument("--out", type=Path, default=REPO / "multirun" / "lmc_report")
    run.add_argument("--seeds", default="0,1,2")
    run.add_argument("--models", default="mlp,cnn")
    run.add_argument("--only", choices=("all", "main", "sweep", "why"), default="all")
    run.add_argument("overrides", nargs="*", help="extra fedtna.lmc overrides, e.g. epochs=20")
    table = commands.add_parser("table", help="= python -m fedtna.report DIR [DIR ...] [--out OUT] ...")
    table.add_argument("arguments", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "table":
        report(args.arguments)
        return
    targets = run_all(args.out, args.seeds, args.models.split(","), args.overrides, args.only)
    report([str(target) for target in targets] + ["--out", str(args.out)])


if __name__ == "__main__":
    main()
