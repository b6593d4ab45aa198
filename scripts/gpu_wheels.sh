#!/usr/bin/env bash
# Prepare, here (a machine with a package registry), the folder of wheels that scripts/gpu_check.sh installs
# on a GPU machine without one: the lent machine has Python 3.12, torch, torchvision and numpy, no registry,
# and takes at most 64 MiB of files along with the working tree (so no Ray, whose wheel alone is 74 MB).
#
#   . .venv/bin/activate && bash scripts/gpu_wheels.sh          # -> wheels/gpu-cp312/ (git-ignored), ~24 MB
#   then on the GPU machine: bash scripts/gpu_check.sh            # carry=["wheels/gpu-cp312"]
#
# The folder holds, for CPython 3.12 on manylinux x86_64:
#   - fedtna's own wheel and flwr's (both installed with --no-deps, see below);
#   - a wheel of every package fedtna's core install needs, at the versions of constraints.txt where those
#     exist for 3.12, except: torch, torchvision, numpy (preinstalled there); wandb (only for wandb.mode other
#     than disabled, and never imported then); ray (only for simulation.backend=ray; flwr's `simulation`
#     extra is left out); uv (flwr needs it only to install a Flower app's dependencies in a SuperExec, which
#     the GPU check does not use: 22 MB); and the large packages the lent machine's image already has
#     (PREINSTALLED below), whose versions there must then satisfy fedtna's ranges;
#   - requirements.txt: what `pip install --no-index --find-links <folder> -r requirements.txt` must satisfy,
#     from installed packages or the folder: fedtna's core requirements (ranges, from pyproject.toml) less
#     wandb and flwr, plus flwr's own requirements less uv;
# and the script then proves, without any registry (uv pip compile --no-index), that requirements.txt
# resolves from this folder plus the packages assumed present there (stand-in wheels of TORCH_VERSION,
# TORCHVISION_VERSION, NUMPY_VERSION and PREINSTALLED at the resolved versions).
#
# Environment: PYTHON (default python: must have pip and uv, as a fedtna venv does), PY_VERSION (3.12),
# PREINSTALLED (space-separated names to leave out). Re-running reuses the wheels already in the folder.
set -euo pipefail
export UV_PYTHON_DOWNLOADS=never  # uv resolves for --python-version without a 3.12 interpreter

DEST=${1:-wheels/gpu-cp312}
PYTHON=${PYTHON:-python}
PY_VERSION=${PY_VERSION:-3.12}
TORCH_VERSION=${TORCH_VERSION:-2.11.0}
TORCHVISION_VERSION=${TORCHVISION_VERSION:-0.26.0}
NUMPY_VERSION=${NUMPY_VERSION:-2.5.2}
# In the lent machine's image and large (MB as cp312 wheels): pyarrow 54, scipy 34, pandas 12, matplotlib 10,
# scikit-learn 9, grpcio 7, pillow 7, fonttools 5, hf-xet 4.
PREINSTALLED=${PREINSTALLED:-pyarrow scipy pandas matplotlib scikit-learn grpcio pillow fonttools hf-xet}
LEFT_OUT="torch torchvision numpy wandb ray uv $PREINSTALLED"
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64
           manylinux2014_x86_64 manylinux1_x86_64)

[[ -f pyproject.toml && -d fedtna ]] || { echo "gpu_wheels: run it from the repository root" >&2; exit 1; }
"$PYTHON" -m uv --version >/dev/null 2>&1 || { echo "gpu_wheels: '$PYTHON -m uv' not found (activate fedtna's venv)" >&2; exit 1; }
mkdir -p "$DEST"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. What to resolve: fedtna's core requirements (pyproject.toml) with flwr's extras and wandb dropped.
"$PYTHON" - "$work" <<'EOF'
import re
import sys
import tomllib
from pathlib import Path

work = Path(sys.argv[1])
deps = tomllib.loads(Path("pyproject.toml").read_text())["project"]["dependencies"]
name = lambda req: re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower()  # noqa: E731
wanted = [re.sub(r"\[[^\]]*\]", "", req) for req in deps if name(req) not in {"wandb", "torch", "torchvision", "numpy"}]
(work / "top.in").write_text("\n".join(wanted) + "\n")
# fedtna's own lines for torch/torchvision/numpy go to requirements.txt: pip checks them against what is installed
(work / "present.in").write_text("\n".join(req for req in deps if name(req) in {"torch", "torchvision", "numpy"}) + "\n")
EOF
grep -v -E '^(torch|torchvision|numpy|triton|nvidia-|cuda-)' constraints.txt >"$work/constraints.txt"

# 2. Resolve for CPython $PY_VERSION on Linux x86_64 (uv reads metadata without installing).
no_emit=()
for package in $LEFT_OUT; do no_emit+=(--no-emit-package "$package"); done
"$PYTHON" -m uv pip compile -q "$work/top.in" -c "$work/constraints.txt" --python-version "$PY_VERSION" \
    --python-platform x86_64-manylinux_2_28 --no-header --no-annotate "${no_emit[@]}" -o "$work/pins.txt"
"$PYTHON" -m uv pip compile -q "$work/top.in" -c "$work/constraints.txt" --python-version "$PY_VERSION" \
    --python-platform x86_64-manylinux_2_28 --no-header --no-annotate -o "$work/all-pins.txt"

# 3. Download each pinned wheel (binary for cp312); a package published only as an sdist is built here and must
#    give a pure-Python wheel (py3-none-any), which any Python 3 can install.
platform_args=()
for platform in "${PLATFORMS[@]}"; do platform_args+=(--platform "$platform"); done
mapfile -t missing < <("$PYTHON" - "$DEST" "$work/pins.txt" <<'EOF'
import re
import sys
from pathlib import Path

dest, pins = Path(sys.argv[1]), Path(sys.argv[2])
normal = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
have = {(normal(wheel.name.split("-")[0]), wheel.name.split("-")[1]) for wheel in dest.glob("*.whl")}
for line in pins.read_text().splitlines():
    if "==" in line and (normal(line.split("==")[0]), line.split("==")[1].strip()) not in have:
        print(line.strip())
EOF
)
download() {
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
        "${platform_args[@]}" -d "$DEST" "$@" >/dev/null 2>&1
}
if [[ ${#missing[@]} -gt 0 ]] && ! download "${missing[@]}"; then
    for requirement in "${missing[@]}"; do  # one at a time: find the ones without a cp312 wheel
        download "$requirement" && continue
        echo "gpu_wheels: no binary wheel of $requirement for Python $PY_VERSION; building it from its sdist"
        "$PYTHON" -m pip wheel -q --no-deps -w "$work/built" "$requirement"
        built=("$work"/built/*.whl)
        [[ ${#built[@]} -eq 1 && ${built[0]} == *-none-any.whl ]] \
            || { echo "gpu_wheels: $requirement built as ${built[*]##*/}, not a pure-Python wheel" >&2; exit 1; }
        mv "${built[0]}" "$DEST/"
    done
fi

# 4. fedtna's own wheel (from a copy of this tree, which keeps build/ and *.egg-info out of it).
mkdir "$work/src"
cp -r pyproject.toml README.md fedtna "$work/src/"
rm -f "$DEST"/fedtna-*.whl
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" "$work/src" >/dev/null

# 5. requirements.txt, then drop wheels no longer pinned (an older version from an earlier run).
"$PYTHON" - "$DEST" "$work" <<'EOF'
import re
import sys
import zipfile
from pathlib import Path

dest, work = Path(sys.argv[1]), Path(sys.argv[2])
normal = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
flwr_wheel = next(dest.glob("flwr-*.whl"))
with zipfile.ZipFile(flwr_wheel) as archive:
    metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
flwr_requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
flwr_requires = [req for req in flwr_requires if "extra ==" not in req and normal(re.split(r"[\[<>=!~; (]", req)[0]) != "uv"]
top = [req for req in (work / "top.in").read_text().split("\n") if req and not req.startswith("flwr>")]
lines = [
    "# scripts/gpu_check.sh: pip install --no-index --find-links <this folder> -r requirements.txt, then flwr and",
    "# fedtna with --no-deps (flwr needs uv only for SuperExec installs; wandb only for wandb.mode!=disabled).",
    "# Written by scripts/gpu_wheels.sh.",
    "# fedtna's core requirements, less wandb and flwr:",
    *(work / "present.in").read_text().split("\n"), *top,
    f"# flwr {flwr_wheel.name.split('-')[1]}'s requirements, less uv:", *flwr_requires,
]
(dest / "requirements.txt").write_text("\n".join(line for line in lines if line) + "\n")
pinned = {normal(line.split("==")[0]): line.split("==")[1].strip()
          for line in (work / "pins.txt").read_text().splitlines() if "==" in line}
for wheel in dest.glob("*.whl"):
    name, version = wheel.name.split("-")[:2]
    if normal(name) != "fedtna" and pinned.get(normal(name)) != version:
        print(f"gpu_wheels: removing {wheel.name} (not pinned now)")
        wheel.unlink()
EOF

# 6. Proof, without a registry: requirements.txt resolves from the folder plus stand-ins for what is preinstalled.
"$PYTHON" - "$work" "$TORCH_VERSION" "$TORCHVISION_VERSION" "$NUMPY_VERSION" "$PREINSTALLED" <<'EOF'
import re
import sys
import zipfile
from pathlib import Path

work, torch, torchvision, numpy, preinstalled = Path(sys.argv[1]), *sys.argv[2:6]
pins = {re.sub(r"[-_.]+", "_", line.split("==")[0]).lower(): line.split("==")[1].strip()
        for line in (work / "all-pins.txt").read_text().splitlines() if "==" in line}
present = {"torch": torch, "torchvision": torchvision, "numpy": numpy}
present |= {re.sub(r"[-_.]+", "_", name).lower(): pins[re.sub(r"[-_.]+", "_", name).lower()] for name in preinstalled.split()}
stubs = work / "present"
stubs.mkdir()
for name, version in present.items():  # an empty wheel: "this version is installed", no requirements of its own
    with zipfile.ZipFile(stubs / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        info = f"{name}-{version}.dist-info"
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: gpu_wheels\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
EOF
"$PYTHON" -m uv pip compile -q --no-index --find-links "$DEST" --find-links "$work/present" \
    --python-version "$PY_VERSION" --python-platform x86_64-manylinux_2_28 --no-header --no-annotate \
    "$DEST/requirements.txt" -o "$work/offline.txt" \
    || { echo "gpu_wheels: requirements.txt does not resolve from $DEST without a registry" >&2; exit 1; }
"$PYTHON" - "$DEST" "$work" "$TORCH_VERSION" "$TORCHVISION_VERSION" "$NUMPY_VERSION" <<'EOF'
import re
import sys
from pathlib import Path

dest, work = Path(sys.argv[1]), Path(sys.argv[2])
normal = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
resolved = {normal(line.split("==")[0]) for line in (work / "offline.txt").read_text().splitlines() if "==" in line}
in_folder = {normal(wheel.name.split("-")[0]) for wheel in dest.glob("*.whl")}
stubs = {normal(wheel.name.split("-")[0]) for wheel in (work / "present").glob("*.whl")}
unused = in_folder - resolved - {"flwr", "fedtna"}
for wheel in dest.glob("*.whl"):  # requirements of the preinstalled packages only (matplotlib's kiwisolver, ...)
    if normal(wheel.name.split("-")[0]) in unused:
        wheel.unlink()
wheels = sorted(dest.glob("*.whl"))
size = sum(wheel.stat().st_size for wheel in wheels)
print(f"gpu_wheels: {len(wheels)} wheels, {size / 2**20:.1f} MiB in {dest}/ (left out as needed only by what is "
      f"preinstalled: {', '.join(sorted(unused)) or 'none'})")
print(f"   requirements.txt resolves from it without a registry; assumed installed there: {', '.join(sorted(stubs))}")
EOF
