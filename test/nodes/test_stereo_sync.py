"""StereoSynchronizer: exact and approximate pairing, drops of unmatched messages, bounded queues."""

import pytest

from dense_descriptors_ros.nodes.stereo_sync import StereoSynchronizer


def _sync(slop=0.005, queue_size=10):
    pairs = []
    return StereoSynchronizer(lambda left, right: pairs.append((left, right)), slop, queue_size), pairs


def test_exact_pairs_in_any_arrival_order():
    sync, pairs = _sync(slop=0.0)
    sync.add_left(1.0, "L1")
    sync.add_left(2.0, "L2")
    sync.add_right(1.0, "R1")
    sync.add_right(2.0, "R2")
    sync.add_right(3.0, "R3")
    sync.add_left(3.0, "L3")
    assert pairs == [("L1", "R1"), ("L2", "R2"), ("L3", "R3")]
    assert sync.unmatched == 0


def test_approximate_pairs_within_slop_and_drops_orphans():
    sync, pairs = _sync(slop=0.01)
    sync.add_left(1.000, "L1")
    sync.add_right(1.004, "R1")
    sync.add_left(2.000, "L2")  # its right image was lost
    sync.add_left(3.000, "L3")
    sync.add_right(3.008, "R3")
    sync.add_right(3.500, "R_orphan")
    sync.add_left(4.000, "L4")
    sync.add_right(4.002, "R4")
    assert pairs == [("L1", "R1"), ("L3", "R3"), ("L4", "R4")]
    assert sync.unmatched == 2  # L2 and R_orphan


def test_queues_are_bounded():
    sync, pairs = _sync(queue_size=3)
    for i in range(10):
        sync.add_left(float(i), f"L{i}")
    assert sync.unmatched == 7 and pairs == []  # each left message beyond 3 pushed the oldest out
    sync.add_right(9.0, "R9")
    assert pairs == [("L9", "R9")]
    assert sync.unmatched == 9  # L7 and L8, the only others still queued, can no longer be matched


def test_invalid_settings():
    with pytest.raises(ValueError, match="slop"):
        StereoSynchronizer(print, slop=-1)
    with pytest.raises(ValueError, match="queue_size"):
        StereoSynchronizer(print, queue_size=0)
