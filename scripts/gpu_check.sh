#!/usr/bin/env bash
# One short check of a CUDA machine (about 2 minutes on one GPU, at most 5):
#   1. CUDA: nvidia-smi, torch.cuda.is_available(), device count and names;
#   2. the default experiment on the GPU (device=cuda simulation=gpu: 0.25 GPU per client);
#   3. 100 clients, 10 sampled per round, 0.1 GPU each (ten clients share one GPU), mnist5k, 5 rounds;
# then a table of s/round and accuracy read from each run's metrics.jsonl and summary.json.
# Exit 0 only if every step passed; without a GPU it stops at step 1 with one line.
#
#   . .venv/bin/activate && bash scripts/gpu_check.sh      # from the repository root
#
# Run folders: outputs/gpu_check/<step>/ (replaced on every check). PYTHON=... picks another interpreter.
set -uo pipefail

OUT=outputs/gpu_check
PYTHON=${PYTHON:-python}
STEP_TIMEOUT=${STEP_TIMEOUT:-150}   # seconds per experiment; the two together stay under 5 minutes

die() {
    echo "gpu_check: $*" >&2
    exit 1
}

[[ -f pyproject.toml && -d fedtna ]] || die "run it from the repository root: bash scripts/gpu_check.sh"
"$PYTHON" -c "import fedtna" 2>/dev/null || die "fedtna is not importable by '$PYTHON'; activate the venv first (. .venv/bin/activate)"

# 1. CUDA ------------------------------------------------------------------------------------------
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

# 2./3. Experiments ------------------------------------------------------------------------------
mkdir -p "$OUT"
failed=0
STEPS=()

run_step() {  # run_step <name> <overrides...>
    local name=$1
    shift
    local dir="$OUT/$name"
    rm -rf "$dir"
    echo "== $name: python -m fedtna.run $*"
    local started=$SECONDS
    timeout "$STEP_TIMEOUT" "$PYTHON" -m fedtna.run "$@" progress=false print_config=false "hydra.run.dir=$dir" \
        >"$OUT/$name.log" 2>&1
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

run_step 2_default_gpu device=cuda simulation=gpu
run_step 3_100_clients_0.1gpu device=cuda simulation=gpu simulation.client_resources.num_gpus=0.1 \
    num_clients=100 fraction_train=0.1 dataset=mnist5k num_rounds=5

# Table --------------------------------------------------------------------------------------------
"$PYTHON" - "$OUT" "${STEPS[@]}" <<'EOF' || failed=1
import json
import statistics
import sys
from pathlib import Path

out, steps = Path(sys.argv[1]), sys.argv[2:]
print(f"\n{'run':28}{'status':>11}{'rounds':>8}{'round 1 s':>11}{'s/round':>9}{'final acc':>11}{'wall s':>8}"
      f"{'failed clients':>16}")
bad = False
for step in steps:
    summary_path, metrics_path = out / step / "summary.json", out / step / "metrics.jsonl"
    if not summary_path.exists() or not metrics_path.exists():
        print(f"{step:28}{'no result':>11}")
        bad = True
        continue
    summary = json.loads(summary_path.read_text())
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    later = [row["seconds"] for row in rows[1:]] or [rows[0]["seconds"]]  # round 1 includes actor start-up
    failures = sum(row.get("failed_clients", 0) + row.get("rejected_clients", 0) for row in rows)
    accuracy = summary.get("final_test_accuracy")
    print(f"{step:28}{summary.get('status', '?'):>11}{len(rows):>8}{rows[0]['seconds']:>11.2f}"
          f"{statistics.median(later):>9.2f}{accuracy if accuracy is not None else float('nan'):>11.4f}"
          f"{summary.get('total_wall_seconds', float('nan')):>8.1f}{failures:>16}")
    # a client that could not use the GPU fails (device=cuda), so failed clients mean a bad GPU setup
    bad |= summary.get("status") != "completed" or failures > 0 or accuracy is None
print("(s/round: median of rounds 2.., round 1 includes Ray's actor start-up; wall s: the whole run)")
sys.exit(1 if bad else 0)
EOF

if [[ $failed -ne 0 ]]; then
    echo "gpu_check: FAILED (logs and run folders in $OUT/)" >&2
    exit 1
fi
echo "gpu_check: all steps passed (run folders in $OUT/)"
