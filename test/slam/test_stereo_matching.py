"""Stereo matching along rows: learned-feature matches on a rendered box room lie at the true depth; the row band
holds exactly the pairs within the row tolerance; the two best distances of a row are those of a sort."""

import numpy as np
import pytest

from dense_descriptors_ros.slam.features import FeatureConfig, LearnedDenseFeatures
from dense_descriptors_ros.slam.stereo_matching import _row_band_pairs, best_two, match_stereo_rows


@pytest.mark.parametrize("detector", ["gftt", "fast", "saliency"])
def test_learned_stereo_matches_have_correct_depth(first_frame, detector, box_room_camera):
    feats = LearnedDenseFeatures(FeatureConfig(detector=detector))
    left = feats.extract(first_frame.left, first_frame.left_desc)
    right = feats.extract(first_frame.right, first_frame.right_desc)
    assert left.descriptors.shape[1] == 16
    assert np.allclose(np.linalg.norm(left.descriptors, axis=1), 1.0, atol=1e-5)
    uR = match_stereo_rows(left, right, feats, box_room_camera)
    ok = np.isfinite(uR)
    assert ok.sum() > 100
    # every matched point lies on a wall of the 10 x 4 x 10 m room seen from the trajectory
    pc = box_room_camera.triangulate(left.keypoints[ok, 0], left.keypoints[ok, 1], uR[ok])
    pw = pc @ first_frame.T_world_cam[:3, :3].T + first_frame.T_world_cam[:3, 3]
    relative_gap = np.min(np.abs(np.abs(pw) - np.array([5.0, 2.0, 5.0])), axis=1) / pc[:, 2]
    tolerance = 0.1 if detector == "saliency" else 0.05  # saliency peaks are whole pixels, corners sub-pixel
    assert np.median(relative_gap) < tolerance / 3
    assert np.mean(relative_gap < tolerance) > 0.8


def test_row_band_holds_exactly_the_pairs_within_the_row_tolerance():
    """Against every pair tested (the N x M definition), with rows on a quarter-pixel lattice so many pairs lie
    exactly 1.5 px apart, duplicated rows, and rows far outside each other's band."""
    rng = np.random.default_rng(3)
    left = np.stack([rng.uniform(0, 320, 300), rng.integers(0, 960, 300) / 4.0], axis=1).astype(np.float32)
    right = np.stack([rng.uniform(0, 320, 400), rng.integers(0, 960, 400) / 4.0], axis=1).astype(np.float32)
    right[:50, 1] = left[:50, 1] + 1.5
    src, tgt = _row_band_pairs(left, right, 1.5)
    expected = np.nonzero(np.abs(left[:, None, 1] - right[None, :, 1]) <= 1.5)
    order = np.lexsort((tgt, src))
    np.testing.assert_array_equal(src[order], expected[0])
    np.testing.assert_array_equal(tgt[order], expected[1])
    assert len(src) > 300
    none = _row_band_pairs(left[:5], np.zeros((0, 2), np.float32), 1.5)
    assert len(none[0]) == len(none[1]) == 0


def test_best_two_are_the_two_smallest_of_each_row():
    """Ties (a repeated best counts as the second), rows without any finite distance and a single column."""
    rng = np.random.default_rng(4)
    distances = rng.integers(0, 20, (200, 50)).astype(np.float32)
    distances[:, ::3] = np.inf
    distances[7] = np.inf
    best, best_d, second_d = best_two(distances)
    ordered = np.sort(distances, axis=1)
    np.testing.assert_array_equal(best_d, ordered[:, 0])
    np.testing.assert_array_equal(second_d, ordered[:, 1])
    np.testing.assert_array_equal(distances[np.arange(200), best], best_d)
    assert (second_d == best_d).sum() > 10  # ties were exercised
    one = best_two(distances[:, :1])
    assert np.isinf(one[2]).all()
