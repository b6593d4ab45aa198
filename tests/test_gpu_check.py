"""scripts/gpu_check.sh and scripts/gpu_wheels.sh: parse, and without a GPU the check stops at step 1 with one
line. The whole check runs on the CPU with DEVICE=cpu ROUNDS=2 (a few minutes; docs/engines.md#gpu-check)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", ["gpu_check.sh", "gpu_wheels.sh"])
def test_script_parses(script: str) -> None:
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)], capture_output=True).returncode == 0


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has nvidia-smi")
def test_without_a_gpu_the_check_stops_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "WHEELS": ""}  # WHEELS= : no install from a folder
    result = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "gpu_check: no GPU: nvidia-smi not found (this check needs a machine with an NVIDIA GPU and driver)"]
    assert "== 2" not in result.stdout
