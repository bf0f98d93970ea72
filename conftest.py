import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test"))

# Two cores: keep torch from oversubscribing them when tests run beside other work.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def ros():
    """A real rclpy context with a spinning executor (see rclpy_harness.py)."""
    from rclpy_harness import RosHarness

    harness = RosHarness()
    yield harness
    harness.close()
