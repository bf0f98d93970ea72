"""atomic_path: the new content replaces a file only when complete; a failed write leaves the old one and no
temporary file behind."""

import numpy as np
import pytest

from dense_descriptors_ros.io.atomic_files import atomic_path, atomic_write_text


def test_complete_write_replaces_the_file(tmp_path):
    path = tmp_path / "tracks.csv"
    path.write_text("old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["tracks.csv"]


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("previous map")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half a ma")
        raise RuntimeError("killed half-way")
    assert path.read_text() == "previous map"
    assert [p.name for p in tmp_path.iterdir()] == ["map.yaml"]


def test_the_temporary_name_keeps_the_suffix_writers_rely_on(tmp_path):
    path = tmp_path / "map.npz"
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, points=np.arange(3))  # numpy appends .npz to any other name
    with np.load(path) as data:
        np.testing.assert_array_equal(data["points"], [0, 1, 2])
    assert [p.name for p in tmp_path.iterdir()] == ["map.npz"]
