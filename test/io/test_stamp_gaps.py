"""StampGaps: frames lost upstream, counted from the gaps in the stamps."""

import numpy as np

from dense_descriptors_ros.io.stamp_gaps import StampGaps


def _feed(stamps):
    gaps = StampGaps()
    per_frame = [gaps.add(t) for t in stamps]
    return gaps, per_frame


def test_regular_stream_with_jitter_loses_nothing():
    rng = np.random.default_rng(0)
    stamps = np.arange(300) / 30.0 + rng.uniform(-0.004, 0.004, 300)
    gaps, _ = _feed(stamps)
    assert gaps.lost == 0
    assert abs(gaps.period - 1 / 30) < 0.004


def test_gaps_count_the_missing_frames_even_when_half_are_lost():
    rng = np.random.default_rng(1)
    kept = np.union1d(np.arange(4), rng.choice(300, 150, replace=False))  # the period is known after 3 steps
    gaps, _ = _feed(kept / 10.0)
    assert gaps.lost == kept[-1] + 1 - len(kept)


def test_one_gap_is_reported_on_the_frame_after_it():
    _, per_frame = _feed([0.0, 0.1, 0.2, 0.3, 0.6, 0.7])
    assert per_frame == [0, 0, 0, 0, 2, 0]


def test_stamps_going_back_restart_without_counting_a_loss():
    gaps, _ = _feed([10.0, 10.1, 10.2, 10.3, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert (gaps.lost, gaps.restarts) == (0, 1)
    assert gaps.add(0.5) == 0  # a repeated stamp is no step
