#!/usr/bin/env bash
# Issue-3 comparison on mnist5k, 3 seeds: FedAvg, FedProx, FedPFN and FedPNU (rho 0.4, 0.6)
# in three regimes (model: $MODEL, default mlp: 54 runs fit a 2-core machine in about an hour). Results land in multirun/fl-*/; each regime ends with its report: multirun/fl-*/report.md
set -euo pipefail
common="progress=false print_config=false save_model=false model=${MODEL:-mlp}"
sweep() {  # $1 = sweep name, $2 = pnu_split, rest = overrides
  local name=$1 split=$2; shift 2
  python -m fedtna.run -m $common "$@" strategy=fedavg,fedprox seed=0,1,2 hydra.sweep.dir=multirun/$name/baselines
  python -m fedtna.run -m $common "$@" strategy=fedpfn,fedpnu ++strategy.pnu_split=$split mask_ratio=0.4,0.6 \
      seed=0,1,2 hydra.sweep.dir=multirun/$name/masked
}
# E = 1 in the Dirichlet regimes, so FedPNU splits the local steps in half (pnu_split=step);
# under the epoch split it would train the whole epoch under the complement mask.
sweep fl-alpha0.5 step partition.alpha=0.5
sweep fl-alpha0.1 step partition.alpha=0.1
sweep fl-drift epoch +experiment=drift
# One report per regime (baselines + masked runs together, so every method is paired with FedAvg per seed):
# tables, paired differences with 95% CIs, curves -> multirun/<regime>/report.{md,csv,json}, *.png
for regime in fl-alpha0.5 fl-alpha0.1 fl-drift; do python -m fedtna.report multirun/$regime; done
