"""Error percentile (papers/000 section 4): 0 for a perfect descriptor, chance (50) for a useless one."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptors_ros.metrics.error_percentile import error_percentiles, mean_error_percentile
from dense_descriptors_ros.metrics.matching import grid_points


def test_error_percentile_identity_is_zero_and_shuffled_is_chance(random_descriptors):
    desc = random_descriptors(30, 40, 16)
    pts = grid_points(30, 40, 4)
    assert mean_error_percentile(desc, desc, pts, pts) == 0.0
    shuffled = pts[np.random.default_rng(1).permutation(len(pts))]
    assert 40.0 < mean_error_percentile(desc, desc, pts, shuffled) < 60.0
    per_point = error_percentiles(desc, desc, pts, shuffled)
    assert per_point.shape == (len(pts),) and per_point.min() >= 0 and per_point.max() <= 100


def test_error_percentile_counts_ties_half_so_constant_descriptors_score_chance():
    constant = np.full((30, 40, 16), 0.25, np.float32)
    pts = grid_points(30, 40, 4)
    # 1199 other pixels tie with the true match: half of them count, (1199 / 2) / 1200 pixels.
    assert mean_error_percentile(constant, constant, pts, pts) == pytest.approx(100 * 599.5 / 1200)


def test_error_percentile_by_hand() -> None:
    desc_b = np.zeros((2, 3, 1), np.float32)
    desc_b[..., 0] = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    desc_a = np.full((2, 3, 1), 1.2, np.float32)
    # Query value 1.2. True match at (x=2, y=0) = 2.0 (distance 0.8): only 1.0 (0.2) is closer -> 1/6.
    # True match at (x=1, y=0) = 1.0: nothing is closer -> 0.
    values = error_percentiles(desc_a, desc_b, np.array([[0, 0], [0, 0]]), np.array([[2, 0], [1, 0]]))
    np.testing.assert_allclose(values, [100 / 6, 0.0])
    assert mean_error_percentile(desc_a, desc_b, np.array([[0, 0]]), np.array([[2, 0]])) == pytest.approx(100 / 6)
    with pytest.raises(ValueError, match="descriptor images"):
        error_percentiles(desc_a, desc_b[..., :0], np.zeros((1, 2)), np.zeros((1, 2)))
