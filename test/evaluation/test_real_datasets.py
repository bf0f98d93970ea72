"""Real-data loaders: the .flo reader, and the shared data folder when present (skipped without it)."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptors_ros.evaluation import real_datasets
from dense_descriptors_ros.evaluation.real_datasets import read_flo


def test_read_flo_round_trip(tmp_path):
    flow = np.random.default_rng(0).normal(size=(5, 7, 2)).astype(np.float32)
    path = tmp_path / "f.flo"
    path.write_bytes(np.float32(202021.25).tobytes() + np.array([7, 5], "<i4").tobytes() + flow.tobytes())
    np.testing.assert_array_equal(read_flo(path), flow)
    (tmp_path / "bad.flo").write_bytes(b"\0" * 20)
    with pytest.raises(ValueError, match=r"not a \.flo file"):
        read_flo(tmp_path / "bad.flo")


@pytest.mark.data
def test_sintel_flow_parses():
    try:
        real_datasets.dataset_dir("sintel")
    except real_datasets.DatasetMissing as err:
        pytest.skip(str(err))
    pair = real_datasets.load_sintel_pair("alley_1_easy")
    assert pair.flow.shape == (436, 1024, 2) and pair.frame1.shape == (436, 1024, 3)
    assert np.abs(pair.flow).max() < 20  # README: max |flow| 10.6 px for alley_1
    assert 0.01 < pair.occluded.mean() < 0.04
