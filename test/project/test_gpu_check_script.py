"""scripts/gpu_check.sh: valid bash, and on a machine without CUDA it refuses at once, says why and runs nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_check.sh"


def test_gpu_check_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_gpu_check_refuses_cleanly_without_cuda(tmp_path: Path):
    results = tmp_path / "figures"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable, "OUT": str(results)}
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 3
    assert "no CUDA device" in result.stderr and "nothing was run" in result.stderr
    assert result.stdout == "" and not results.exists()
