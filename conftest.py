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


@pytest.fixture
def shared_dataset():
    """``shared_dataset(name)``: the folder of a dataset of ../shared/data (or $DDR_DATA_DIR); skips when absent."""
    from dense_descriptors_ros.evaluation import real_datasets

    def find(name: str) -> Path:
        try:
            return real_datasets.dataset_dir(name)
        except real_datasets.DatasetMissing as err:
            pytest.skip(str(err))

    return find
