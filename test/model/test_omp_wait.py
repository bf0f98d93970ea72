"""OpenMP's wait policy reaches torch only from the environment before torch is imported: the entry points set it."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dense_descriptors_ros.model.omp_wait import set_omp_wait_policy, torch_omp_wait_policy

REPO = Path(__file__).resolve().parents[2]


def policy_at_torch_import(code: str) -> str:
    """OMP_WAIT_POLICY as torch saw it when ``code`` (which imports torch) ran in a fresh interpreter without it."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | {"PYTHONPATH": str(REPO)}
    check = "import torch; assert 'torch' in sys.modules; print(os.environ.get('OMP_WAIT_POLICY'))"
    result = subprocess.run(
        [sys.executable, "-c", f"import os, sys\n{code}\n{check}"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-1]


def test_node_and_command_line_entry_points_set_the_policy_before_torch():
    node = "sys.argv = ['descriptor_node', '--ros-args', {}]\nimport dense_descriptors_ros.nodes.descriptor_node"
    assert policy_at_torch_import(node.format("'-p', 'omp_wait_policy:=active'")) == "ACTIVE"
    assert policy_at_torch_import(node.format("'-p', 'max_side:=320'")) == "PASSIVE"  # the default
    cli = "from dense_descriptors_ros.cli.main import main\ntry:\n    main({})\nexcept SystemExit:\n    pass"
    assert policy_at_torch_import(cli.format("['describe', '--omp-wait-policy', 'active', '--help']")) == "ACTIVE"
    assert policy_at_torch_import(cli.format("['describe', '--help']")) == "PASSIVE"


def test_too_late_once_torch_is_imported(monkeypatch, caplog):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    with caplog.at_level(logging.WARNING):
        set_omp_wait_policy("active")
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and torch_omp_wait_policy() == "passive"
    assert "already imported" in caplog.text
    with pytest.raises(ValueError, match="not one of"):
        set_omp_wait_policy("spin")
