"""Frame store: frames streamed once to disk, read back through memory maps; keyed by the input and selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dense_descriptors_ros.learning.frame_store import input_key, load_stored, store_frames


def _pairs(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [(rng.integers(0, 256, (6, 8, 3), np.uint8), rng.integers(0, 256, (12, 16, 3), np.uint8)) for _ in range(n)]


def test_stored_frames_read_back_identical_and_writes_stay_in_memory(tmp_path: Path) -> None:
    pairs = _pairs(5)
    consumed = []
    frames, flow_frames = store_frames(tmp_path, "k", (consumed.append(p) or p for p in pairs))
    assert len(consumed) == 5 and frames.shape == (5, 6, 8, 3) and flow_frames.shape == (5, 12, 16, 3)
    again = load_stored(tmp_path, "k")
    for k, (small, large) in enumerate(pairs):
        np.testing.assert_array_equal(frames[k], small)
        np.testing.assert_array_equal(again[1][k], large)
    frames[0] = 0  # copy-on-write: the file keeps the frame
    np.testing.assert_array_equal(load_stored(tmp_path, "k")[0][0], pairs[0][0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.flow_frames", "k.frames", "k.json"]  # no temporaries


def test_without_flow_frames_and_unfinished_stores(tmp_path: Path) -> None:
    frames, flow_frames = store_frames(tmp_path, "small", ((a, None) for a, _ in _pairs(4)))
    assert frames.shape == (4, 6, 8, 3) and flow_frames is None
    assert load_stored(tmp_path, "missing") is None

    def broken():
        yield from _pairs(2)
        raise ValueError("bag cut short")

    with pytest.raises(ValueError, match="cut short"):
        store_frames(tmp_path, "broken", broken())
    assert load_stored(tmp_path, "broken") is None and not list(tmp_path.glob("broken*"))


def test_the_key_follows_the_input_files_and_the_selection(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "bag_0.mcap").write_bytes(b"1234")
    key = input_key(bag, stride=1)
    assert key == input_key(bag, stride=1) and key.startswith("bag-")
    assert key != input_key(bag, stride=2)
    (bag / "bag_0.mcap").write_bytes(b"123456")
    assert key != input_key(bag, stride=1)
