#!/usr/bin/env bash
# The evidence behind the README's result tables (issue 11), on mnist5k with the paper CNN.
#   bash scripts/evidence.sh drift    # drift regime: 5 methods x weight decay {5e-4, 0} x 5 seeds,
#                                     # FedAvg at lr 0.025 (5 seeds): 55 runs
#   bash scripts/evidence.sh alpha    # Dirichlet alpha 0.5, 10 clients, E=2, 30 rounds: 5 methods x wd {5e-4, 0} x 3 seeds (30)
#   bash scripts/evidence.sh rho      # rho robustness, drift regime: FedPFN/FedPNU x rho {0.2,0.8,0.9} + FedPFN 0.6, 3 seeds (21)
#   bash scripts/evidence.sh designs  # mask designs of our own (annealed FedPFN; FedPNU with neuron masks, in every layer
#                                     # or hidden layers only; masks only in the conv layers) vs FedPNU 0.6: drift 5 seeds, alpha 3
#   bash scripts/evidence.sh fusion   # fusion barriers, 3 seeds: MLP and CNN lr x wd grids, MLP rho sweep, VGG-11 (thin)
#                                     # and ResNet-20 (3 epochs, 2 seeds)
#   bash scripts/evidence.sh soups    # model soups: fine-tuned copies of one pretrained MLP / CNN, with/without anchors
#   bash scripts/evidence.sh tuned    # each method at its own lr chosen on held-out validation data (issue 19):
#                                     # validation_fraction=0.1, weight decay 5e-4, lr {0.0125,0.025,0.05,0.1} (alpha: and
#                                     # 0.2; FedProx there 0.05, 0.1) for FedAvg, FedProx (x mu {0.001,0.01,0.1}), FedPFN
#                                     # rho 0.4, FedPNU rho 0.6; drift 5 seeds (120 runs), alpha 0.5 3 seeds (63); then
#                                     # `fedtna.report --select lr,strategy.proximal_mu`
#     In chunks: REGIMES="drift alpha" METHODS="fedavg fedprox fedpfn fedpnu" SEEDS=0,1 (default: 0-4 drift, 0-2 alpha);
#     one sweep folder per regime, method (FedProx: and mu) and seed, run with resume=auto, so a rerun skips
#     finished jobs and continues killed ones. ENGINE (default vectorized, the fastest for these models), LRS,
#     PROX_LRS, MUS; EXTRA adds overrides (a smoke test in its own folder: ROOT=/tmp/smoke EXTRA="model=mlp
#     num_rounds=2"; under the default ROOT its runs would
#     block the real ones, as resume=auto refuses a folder whose overrides differ); NO_REPORT=1 skips the reports.
# Every part keeps its run folders under $ROOT (default multirun/evidence) and ends with reports:
#   python -m fedtna.report $ROOT/drift/wd5e-4 ...  (each command below prints where its report went)
# Two jobs at a time (joblib), each job's Ray sized to half the CPUs.
set -euo pipefail
ROOT=${ROOT:-multirun/evidence}
run() { python -m fedtna.run -m progress=false print_config=false save_model=false \
          hydra/launcher=joblib hydra.launcher.n_jobs=${JOBS:-2} "$@"; }
methods() {  # $1 = sweep dir, $2 = seeds, rest = regime overrides: FedAvg, FedProx, FedPFN 0.4, FedPNU 0.4/0.6
  local out=$1 seeds=$2; shift 2
  run "$@" strategy=fedavg,fedprox seed=$seeds hydra.sweep.dir=$out/baselines
  run "$@" strategy=fedpfn mask_ratio=0.4 seed=$seeds hydra.sweep.dir=$out/fedpfn
  run "$@" strategy=fedpnu mask_ratio=0.4,0.6 seed=$seeds hydra.sweep.dir=$out/fedpnu
}
ALPHA="partition.alpha=0.5 num_clients=10 local_epochs=2 num_rounds=30"
case ${1:?part: drift alpha rho designs fusion soups tuned} in
  drift)
    methods $ROOT/drift/wd5e-4 0,1,2,3,4 +experiment=drift weight_decay=5e-4
    methods $ROOT/drift/wd0 0,1,2,3,4 +experiment=drift weight_decay=0
    # control: is FedPNU's gain only a smaller step? FedAvg at half the client lr
    run +experiment=drift strategy=fedavg lr=0.025 seed=0,1,2,3,4 hydra.sweep.dir=$ROOT/drift/lr-control
    python -m fedtna.report $ROOT/drift/wd5e-4 $ROOT/drift/wd0 --out $ROOT/drift   # one panel per weight decay
    python -m fedtna.report $ROOT/drift/lr-control $ROOT/drift/wd5e-4 --method-keys lr \
        --baseline "strategy=fedavg lr=0.025"     # every method against FedAvg at half the lr, paired by seed
    python -m fedtna.report $ROOT/drift/wd0 ;;
  alpha)
    methods $ROOT/alpha0.5/wd5e-4 0,1,2 $ALPHA weight_decay=5e-4
    methods $ROOT/alpha0.5/wd0 0,1,2 $ALPHA weight_decay=0
    python -m fedtna.report $ROOT/alpha0.5/wd5e-4 $ROOT/alpha0.5/wd0 --out $ROOT/alpha0.5 ;;
  rho)  # rho 0.4 (both) and 0.6 (FedPNU) come from the drift part
    run +experiment=drift strategy=fedpfn,fedpnu mask_ratio=${RHOS:-0.2,0.8,0.9} seed=${SEEDS:-0,1,2} \
        hydra.sweep.dir=$ROOT/rho/masked
    run +experiment=drift strategy=fedpfn mask_ratio=0.6 seed=${SEEDS:-0,1,2} hydra.sweep.dir=$ROOT/rho/fedpfn06
    python -m fedtna.report $ROOT/rho $ROOT/drift/wd5e-4 --out $ROOT/rho ;;
  designs)  # REGIMES="drift alpha"; FedPNU's rho: PNU_RHO
    PNU="strategy=fedpnu mask_ratio=${PNU_RHO:-0.6} mask.granularity=weight mask.scope=null"
    for regime in ${REGIMES:-drift alpha}; do
      if [ $regime = drift ]; then set -- 0,1,2,3,4 +experiment=drift; else set -- 0,1,2 $ALPHA weight_decay=5e-4; fi
      seeds=$1; shift
      run "$@" strategy=fedpfn_anneal mask_ratio=${ANNEAL_FROM:-0.6} seed=$seeds hydra.sweep.dir=$ROOT/designs/$regime/anneal
      run "$@" strategy=fedpnu mask_ratio=${PNU_RHO:-0.6} mask.granularity=neuron seed=$seeds \
          hydra.sweep.dir=$ROOT/designs/$regime/neuron
      run "$@" strategy=fedpnu mask_ratio=${PNU_RHO:-0.6} "mask.scope=[conv1,conv2,conv3]" seed=$seeds \
          hydra.sweep.dir=$ROOT/designs/$regime/conv_scope
      run "$@" strategy=fedpnu mask_ratio=${PNU_RHO:-0.6} mask.granularity=neuron "mask.scope=[conv1,conv2,conv3,fc1]" \
          seed=$seeds hydra.sweep.dir=$ROOT/designs/$regime/neuron_hidden   # hidden units only, not the classifier
    done
    python -m fedtna.report $ROOT/designs/drift $ROOT/drift/wd5e-4 --out $ROOT/designs/drift \
        --baseline "$PNU"   # against the best masked method
    if [ -d $ROOT/designs/alpha ]; then python -m fedtna.report $ROOT/designs/alpha $ROOT/alpha0.5/wd5e-4 \
        --out $ROOT/designs/alpha --baseline "$PNU"; fi ;;
  fusion)
    lmc() { python -m fedtna.lmc -m "modes=[vanilla,tna_pfn,weight_matching]" mask_ratio=0.4 progress=false \
              seed=0,1,2 "$@"; }
    lmc model=mlp lr=0.01,0.05,0.1 weight_decay=0,5e-4 num_threads=1 hydra.sweep.dir=$ROOT/fusion/mlp
    python -m fedtna.lmc -m model=mlp "modes=[tna_pfn,prune_init]" mask_ratio=0.0,0.2,0.4,0.6,0.8 seed=0,1,2 \
        progress=false num_threads=1 hydra.sweep.dir=$ROOT/fusion/mlp_rho
    lmc model=cnn lr=0.01,0.05,0.1 weight_decay=0,5e-4 num_threads=1 hydra.sweep.dir=$ROOT/fusion/cnn
    lmc model=vgg11 model.base_width_divisor=8 lr=0.05 weight_decay=0 num_threads=1 hydra.sweep.dir=$ROOT/fusion/vgg11
    lmc model=resnet20 epochs=3 seed=0,1 lr=0.05 weight_decay=0 num_threads=1 hydra.sweep.dir=$ROOT/fusion/resnet20
    python -m fedtna.report $ROOT/fusion ;;
  soups)  # pretrain (FedAvg, 3 rounds, alpha 0.5), then fine-tune 4 copies per seed at 4 lrs; 10% held out
    python -m fedtna.run model=mlp num_rounds=3 partition.alpha=0.5 progress=false print_config=false \
        hydra.run.dir=$ROOT/soups/pretrain
    python -m fedtna.lmc -m model=mlp init=checkpoint init_checkpoint=$ROOT/soups/pretrain/model.pt num_models=4 \
        holdout=0.1 "model_lrs=[0.01,0.03,0.05,0.1]" epochs=3 "modes=[vanilla,tna_pfn]" mask_ratio=0.4,0.8 \
        seed=0,1,2 progress=false num_threads=1 hydra.sweep.dir=$ROOT/soups/finetune
    python -m fedtna.run model=cnn num_rounds=3 partition.alpha=0.5 progress=false print_config=false \
        hydra.run.dir=$ROOT/soups_cnn/pretrain
    python -m fedtna.lmc -m model=cnn init=checkpoint init_checkpoint=$ROOT/soups_cnn/pretrain/model.pt num_models=4 \
        holdout=0.1 "model_lrs=[0.01,0.03,0.05,0.1]" epochs=3 "modes=[vanilla,tna_pfn]" mask_ratio=0.4 \
        seed=0,1,2 progress=false num_threads=1 hydra.sweep.dir=$ROOT/soups_cnn/finetune ;;
  tuned)
    set -f  # no globbing: overrides such as model.hidden_sizes=[32] in EXTRA stay as written
    TUNED="validation_fraction=0.1 weight_decay=5e-4 simulation.backend=${ENGINE:-vectorized}"
    MUS=${MUS:-0.001,0.01,0.1}
    for regime in ${REGIMES:-drift alpha}; do
      # lr grids: in alpha every method chose 0.1, the top of the drift grid, so its grid goes on to 0.2;
      # FedProx (3 mu, so 3x the runs) gets 0.05 and 0.1 there: below 0.05 every other method was worse, and
      # at 0.2 FedAvg fell to chance on every seed
      if [ $regime = drift ]; then set -- +experiment=drift; seeds=${SEEDS:-0,1,2,3,4}
        lrs=${LRS:-0.0125,0.025,0.05,0.1}; prox_lrs=${PROX_LRS:-$lrs}
      elif [ $regime = alpha ]; then set -- $ALPHA; seeds=${SEEDS:-0,1,2}
        lrs=${LRS:-0.0125,0.025,0.05,0.1,0.2}; prox_lrs=${PROX_LRS:-${LRS:-0.05,0.1}}
      else echo "unknown regime '$regime': drift or alpha" >&2; exit 2; fi
      for method in ${METHODS:-fedavg fedprox fedpfn fedpnu}; do
        case $method in  # each mu of FedProx in a folder of its own, so a wider mu grid never renumbers jobs
          fedavg) runs=("fedavg|strategy=fedavg lr=$lrs") ;;
          fedprox) runs=(); for mu in ${MUS//,/ }; do
                     runs+=("fedprox/mu$mu|strategy=fedprox strategy.proximal_mu=$mu lr=$prox_lrs"); done ;;
          fedpfn) runs=("fedpfn|strategy=fedpfn mask_ratio=0.4 lr=$lrs") ;;
          fedpnu) runs=("fedpnu|strategy=fedpnu mask_ratio=0.6 lr=$lrs") ;;
          *) echo "unknown method '$method': one of fedavg fedprox fedpfn fedpnu" >&2; exit 2 ;;
        esac
        for entry in "${runs[@]}"; do
          for seed in ${seeds//,/ }; do  # a folder per seed; lrs appended to a grid get new job numbers
            run "$@" ${entry#*|} $TUNED ${EXTRA:-} seed=$seed resume=auto '~hydra.callbacks.report' \
                hydra.sweep.dir=$ROOT/tuned/$regime/${entry%%|*}/seed$seed \
              || [ $? = 3 ]  # exit 3: a job failed (diverged at a high lr); selection rules that value out
          done
        done
      done
      if [ -z "${NO_REPORT:-}" ]; then  # each method at its lr (FedProx: lr and mu) with the best validation last-5
        python -m fedtna.report $ROOT/tuned/$regime --select lr,strategy.proximal_mu
      fi
    done ;;
  *) echo "unknown part '$1': one of drift alpha rho designs fusion soups tuned" >&2; exit 2 ;;
esac
