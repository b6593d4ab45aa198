#!/usr/bin/env bash
# Do fedtna's ranges (pyproject.toml, core + [dev]) resolve on every Python we support? uv resolves
# metadata only (nothing is installed, no interpreter needed) against PyPI, for Linux x86_64:
#   1. Python 3.11 (CI's interpreter; constraints.txt is its exact lock)
#   2. Python 3.12
#   3. Python 3.13
#   4. the lent GPU machine: Python 3.12 with torch 2.11 and torchvision 0.26 preinstalled
#   5.-7. the lock, constraints.txt, on Python 3.11, 3.12 and 3.13 (what `pip install -c constraints.txt` needs)
# Exit 0 only if all resolve; otherwise one line per failure, then `uv pip compile`'s reason.
#
#   . .venv/bin/activate && bash scripts/check_resolution.sh      # uv comes with the [dev] extra
#
# UV=... picks another uv. uv reads its own index settings (UV_DEFAULT_INDEX, ...), not pip's.
set -uo pipefail

UV=${UV:-uv}
cd "$(dirname "$0")/.." || exit 1
command -v "$UV" >/dev/null 2>&1 || {
    echo "check_resolution: '$UV' not found; install the dev extra: pip install -c constraints.txt -e \".[dev]\"" >&2
    exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'torch==2.11.*\ntorchvision==0.26.*\n' >"$tmp/gpu-machine.txt"

failed=0
check() {  # check NAME PYTHON WHAT [uv args...]
    local name=$1 python=$2 what=$3 start=$SECONDS
    shift 3
    if "$UV" pip compile pyproject.toml --extra dev --python-version "$python" --python-platform x86_64-unknown-linux-gnu \
        --no-python-downloads --quiet -o "$tmp/$name.txt" "$@" 2>"$tmp/$name.err"; then
        echo "ok    $name: $(grep -cE '^[A-Za-z0-9]' "$tmp/$name.txt") packages, $(grep -E '^(torch|torchvision|flwr)==' "$tmp/$name.txt" | tr '\n' ' ')($((SECONDS - start)) s)"
    else
        echo "FAIL  $name: fedtna[dev] does not resolve for $what; uv says:" >&2
        sed 's/^/      /' "$tmp/$name.err" >&2
        failed=1
    fi
}

check python3.11 3.11 "Python 3.11"
check python3.12 3.12 "Python 3.12"
check python3.13 3.13 "Python 3.13"
check gpu-machine 3.12 "Python 3.12 with torch==2.11.* torchvision==0.26.*" --constraint "$tmp/gpu-machine.txt"
for python in 3.11 3.12 3.13; do
    check "lock-python$python" "$python" "Python $python with constraints.txt" --constraint constraints.txt
done

if [[ $failed != 0 ]]; then
    echo "check_resolution: some Python does not resolve (FAIL lines above)" >&2
    exit 1
fi
