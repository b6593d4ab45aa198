#!/usr/bin/env bash
# One short check of a CUDA machine (a few minutes on one GPU):
#   0. with a folder of wheels (WHEELS=<dir>, or wheels/gpu-cp312/ when it exists; made here by
#      scripts/gpu_wheels.sh): a venv over the machine's own Python and packages (torch, torchvision, numpy),
#      into which fedtna and what it lacks are installed from that folder alone (pip --no-index: no registry);
#   1. CUDA: nvidia-smi, torch.cuda.is_available(), device count and names, a matrix product on the GPU;
#   2. the default experiment (10 clients, 10 rounds) with device=cuda under simulation.backend=local and =vectorized;
#   3. 100 clients, 10 sampled per round (fraction_train=0.1), 5 rounds, device=cuda, under local and vectorized;
#   4. only where Ray is importable: steps 2 and 3 under simulation.backend=ray (0.25 and 0.1 GPU per client);
# then a table of s/round and accuracy read from each run's metrics.jsonl and summary.json.
# Exit 0 only if every step passed; without a GPU it stops at step 1 with one line.
#
#   . .venv/bin/activate && bash scripts/gpu_check.sh      # from the repository root, on a machine with fedtna
#   bash scripts/gpu_check.sh                              # on the lent GPU machine, carry=["wheels/gpu-cp312"]
#
# Run folders: outputs/gpu_check/<step>/ (replaced on every check). Environment:
#   PYTHON=...        the interpreter (default: python3, else python); with wheels, the venv is made over it
#   WHEELS=<dir>      install from this folder (WHEELS= with nothing skips the install); VENV=<dir> (/tmp/fedtna-gpu-venv)
#   STEP_TIMEOUT=150  seconds per experiment
#   For testing this script on a machine without GPU only: DEVICE=cpu skips step 1 and runs every step on the CPU;
#   ROUNDS=N runs every experiment for N rounds.
set -uo pipefail

OUT=outputs/gpu_check
if [[ -z ${PYTHON:-} ]]; then  # python3: an activated venv's, or the lent machine's own (the one with torch)
    PYTHON=python3
    command -v python3 >/dev/null 2>&1 || PYTHON=python
fi
STEP_TIMEOUT=${STEP_TIMEOUT:-150}
DEVICE=${DEVICE:-cuda}
ROUNDS=${ROUNDS:-}
VENV=${VENV:-/tmp/fedtna-gpu-venv}
if [[ -z ${WHEELS+set} && -d wheels/gpu-cp312 ]]; then
    WHEELS=wheels/gpu-cp312
fi
WHEELS=${WHEELS:-}

die() {
    echo "gpu_check: $*" >&2
    exit 1
}

[[ -f pyproject.toml && -d fedtna ]] || die "run it from the repository root: bash scripts/gpu_check.sh"

# 0. Install from the folder of wheels ----------------------------------------------------------------
if [[ -n $WHEELS ]]; then
    [[ -f $WHEELS/requirements.txt ]] || die "$WHEELS/requirements.txt not found: make the folder with scripts/gpu_wheels.sh"
    echo "== 0. install from $WHEELS/ into $VENV (no registry)"
    rm -rf "$VENV"
    "$PYTHON" -m venv --without-pip --system-site-packages "$VENV" || die "could not make a venv with $PYTHON"
    # --system-site-packages shows the base interpreter's packages, not those of a venv that $PYTHON may
    # itself be (the lent machine's python3 is one): a .pth file adds that venv's site-packages after ours.
    "$PYTHON" - "$VENV" <<'EOF' || die "could not link $PYTHON's packages into $VENV"
import glob
import site
import sys
from pathlib import Path

if sys.prefix != sys.base_prefix:
    (target,) = glob.glob(f"{sys.argv[1]}/lib/python*/site-packages")
    Path(target, "_base_venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")
EOF
    pip_install() {
        # --isolated: no pip configuration or PIP_* variable of the machine adds an index or a constraint
        "$PYTHON" -m pip --isolated --python "$VENV/bin/python" install -q --no-index --no-cache-dir \
            --disable-pip-version-check --find-links "$WHEELS" "$@"
    }
    # What is installed and satisfies fedtna's ranges stays (torch, torchvision, numpy, ...); the rest comes
    # from the folder. flwr and fedtna come last, without their requirements: flwr's uv and simulation extra
    # (Ray) and fedtna's wandb are not in the folder and not needed here.
    pip_install -r "$WHEELS/requirements.txt" \
        || die "pip could not install $WHEELS/requirements.txt from the folder alone (see above; a package the machine has but too old? prepare the folder with PREINSTALLED=... without it: scripts/gpu_wheels.sh)"
    pip_install --no-deps "$WHEELS"/flwr-*.whl "$WHEELS"/fedtna-*.whl || die "could not install flwr and fedtna"
    PYTHON=$VENV/bin/python
    "$PYTHON" -c "import torch, torchvision, numpy, flwr, hydra, fedtna; print(f'   torch {torch.__version__}, \
torchvision {torchvision.__version__}, numpy {numpy.__version__}, flwr {flwr.__version__}; fedtna from {fedtna.__file__}')" \
        || die "the venv cannot import fedtna's stack"
fi
"$PYTHON" -c "import fedtna" 2>/dev/null || die "fedtna is not importable by '$PYTHON'; activate the venv first (. .venv/bin/activate)"

# 1. CUDA ------------------------------------------------------------------------------------------
if [[ $DEVICE == cpu ]]; then
    echo "== 1. CUDA: skipped (DEVICE=cpu: testing this script without a GPU; nothing below measures a GPU)"
else
    command -v nvidia-smi >/dev/null 2>&1 || die "no GPU: nvidia-smi not found (this check needs a machine with an NVIDIA GPU and driver)"
    gpus=$(nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader 2>&1) \
        || die "no GPU: nvidia-smi failed: $(echo "$gpus" | head -n 1)"
    echo "== 1. CUDA"
    while IFS= read -r line; do echo "   nvidia-smi: $line"; done <<<"$gpus"
    "$PYTHON" - <<'EOF' || die "no GPU usable by torch (see the line above)"
import sys

import torch

if not torch.cuda.is_available():
    print(f"   torch {torch.__version__} (CUDA build {torch.version.cuda}): torch.cuda.is_available() is False")
    sys.exit(1)
count = torch.cuda.device_count()
for index in range(count):
    properties = torch.cuda.get_device_properties(index)
    print(f"   torch cuda:{index}: {properties.name}, {properties.total_memory / 2**30:.0f} GiB")
probe = torch.ones(1024, 1024, device="cuda")
assert torch.allclose((probe @ probe).cpu(), torch.full((1024, 1024), 1024.0)), "a wrong matrix product on the GPU"
print(f"   torch {torch.__version__}, CUDA {torch.version.cuda}: {count} device(s), a matrix product on cuda:0 is right")
EOF
fi

# 2.-4. Experiments -------------------------------------------------------------------------------
mkdir -p "$OUT"
failed=0
STEPS=()

run_step() {  # run_step <name> <overrides...>
    local name=$1
    shift
    local dir="$OUT/$name"
    local overrides=()
    for override in "$@"; do
        [[ -n $ROUNDS && $override == num_rounds=* ]] || overrides+=("$override")
    done
    [[ -n $ROUNDS ]] && overrides+=("num_rounds=$ROUNDS")
    rm -rf "$dir"
    echo "== $name: python -m fedtna.run ${overrides[*]}"
    local started=$SECONDS
    timeout "$STEP_TIMEOUT" "$PYTHON" -m fedtna.run "${overrides[@]}" progress=false print_config=false \
        "hydra.run.dir=$dir" >"$OUT/$name.log" 2>&1
    local status=$?
    if [[ $status -eq 0 ]]; then
        echo "   done in $((SECONDS - started)) s"
    else
        [[ $status -eq 124 ]] && echo "   TIMEOUT after ${STEP_TIMEOUT} s" || echo "   FAILED (exit $status)"
        tail -n 5 "$OUT/$name.log" | sed 's/^/   | /'
        failed=1
    fi
    STEPS+=("$name")
}

HUNDRED=(num_clients=100 fraction_train=0.1 dataset=mnist5k num_rounds=5)
for backend in local vectorized; do
    run_step "2_default_$backend" "device=$DEVICE" "simulation.backend=$backend"
done
for backend in local vectorized; do
    run_step "3_100_clients_$backend" "device=$DEVICE" "simulation.backend=$backend" "${HUNDRED[@]}"
done
if "$PYTHON" -c "import ray" >/dev/null 2>&1; then
    gpu=()
    [[ $DEVICE != cpu ]] && gpu=(simulation=gpu)
    run_step 4_default_ray "device=$DEVICE" simulation.backend=ray "${gpu[@]}"
    [[ $DEVICE != cpu ]] && gpu+=(simulation.client_resources.num_gpus=0.1)
    run_step 4_100_clients_ray "device=$DEVICE" simulation.backend=ray "${gpu[@]}" "${HUNDRED[@]}"
else
    echo "== 4. Ray: skipped (ray is not importable by $PYTHON)"
fi

# Table --------------------------------------------------------------------------------------------
"$PYTHON" - "$OUT" "${STEPS[@]}" <<'EOF' || failed=1
import json
import statistics
import sys
from pathlib import Path

out, steps = Path(sys.argv[1]), sys.argv[2:]
print(f"\n{'run':26}{'engine':>11}{'status':>11}{'rounds':>8}{'round 1 s':>11}{'s/round':>9}{'final acc':>11}"
      f"{'wall s':>8}{'failed clients':>16}")
bad = False
for step in steps:
    summary_path, metrics_path = out / step / "summary.json", out / step / "metrics.jsonl"
    if not summary_path.exists() or not metrics_path.exists():
        print(f"{step:26}{'':>11}{'no result':>11}")
        bad = True
        continue
    summary = json.loads(summary_path.read_text())
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    later = [row["seconds"] for row in rows[1:]] or [rows[0]["seconds"]]  # round 1 includes warm-up
    failures = sum(row.get("failed_clients", 0) + row.get("rejected_clients", 0) for row in rows)
    accuracy = summary.get("final_test_accuracy")
    print(f"{step:26}{summary.get('engine', '?'):>11}{summary.get('status', '?'):>11}{len(rows):>8}"
          f"{rows[0]['seconds']:>11.2f}{statistics.median(later):>9.2f}"
          f"{accuracy if accuracy is not None else float('nan'):>11.4f}"
          f"{summary.get('total_wall_seconds', float('nan')):>8.1f}{failures:>16}")
    # a client that could not use the GPU fails (device=cuda), so failed clients mean a bad GPU setup
    bad |= summary.get("status") != "completed" or failures > 0 or accuracy is None
print("(s/round: median of rounds 2.., round 1 includes warm-up (CUDA kernels, the vectorized engine's first "
      "batch, Ray's actors); wall s: the whole process, Ray's start-up included)")
sys.exit(1 if bad else 0)
EOF

if [[ $failed -ne 0 ]]; then
    echo "gpu_check: FAILED (logs and run folders in $OUT/)" >&2
    exit 1
fi
echo "gpu_check: all steps passed (run folders in $OUT/)"
