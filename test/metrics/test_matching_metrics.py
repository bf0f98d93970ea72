"""Matching metrics on hand-built cases with known answers: nearest neighbours, PCK, MMA, homographies, SAND AUC."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptors_ros.metrics.matching import (
    flow_correspondences,
    grid_points,
    match_nearest,
    mean_matching_accuracy,
    mutual_nearest_mask,
    pck,
    sand_auc,
    warp_points_homography,
)


def test_identity_descriptors_match_perfectly(random_descriptors):
    desc = random_descriptors(20, 30, 16)
    pts = grid_points(20, 30, 3)
    pred = match_nearest(desc, desc, pts)
    assert np.array_equal(pred, pts)
    assert pck(pred, pts) == {"pck@1": 1.0, "pck@3": 1.0, "pck@5": 1.0, "pck@10": 1.0}
    assert mutual_nearest_mask(desc, desc, pts, pred).all()


def test_translated_descriptors_recover_the_shift(random_descriptors):
    desc_a = random_descriptors(24, 32, 8)
    desc_b = np.roll(desc_a, shift=(2, 5), axis=(0, 1))  # content moves by x+5, y+2
    pts = grid_points(24, 32, 2, margin=0)
    pts = pts[(pts[:, 0] < 27) & (pts[:, 1] < 22)]
    assert np.array_equal(match_nearest(desc_a, desc_b, pts), pts + np.array([5, 2]))


def test_pck_counts_thresholds_inclusively():
    gt = np.zeros((4, 2))
    pred = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [6.0, 8.0]])  # errors 0, 3, 4, 10
    assert pck(pred, gt) == {"pck@1": 0.25, "pck@3": 0.5, "pck@5": 0.75, "pck@10": 1.0}
    with pytest.raises(ValueError, match="same shape"):
        pck(pred, gt[:2])


def test_mean_matching_accuracy_thresholds():
    errors = np.array([0.5, 1.5, 2.5, 20.0])
    mma = mean_matching_accuracy(errors)
    assert mma["mma@1"] == 0.25 and mma["mma@2"] == 0.5 and mma["mma@10"] == 0.75
    assert mma["mma_mean"] == pytest.approx((0.25 + 0.5 + 8 * 0.75) / 10)
    assert mean_matching_accuracy(np.array([]))["mma_mean"] == 0.0


def test_homography_warp():
    h = np.array([[2.0, 0, 1], [0, 2, -1], [0, 0, 1]])
    np.testing.assert_allclose(warp_points_homography(h, np.array([[1.0, 2.0]])), [[3.0, 3.0]])
    projective = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 2]])
    np.testing.assert_allclose(warp_points_homography(projective, np.array([[4.0, 6.0]])), [[2.0, 3.0]])


def test_sand_auc_perfect_and_chance(random_descriptors):
    desc = random_descriptors(40, 40, 16)
    pts = grid_points(40, 40, 5, margin=2)
    perfect = sand_auc(desc, desc, pts, pts)
    assert perfect["auc"] == 100.0 and perfect["mu_pos"] == pytest.approx(0.0, abs=1e-6)
    assert perfect["mu_neg"] == pytest.approx(np.sqrt(2), rel=0.1)  # random unit vectors are ~orthogonal
    local = sand_auc(desc, desc, pts, pts, radius=5.0)
    assert local["auc"] == 100.0
    # Constant descriptors cannot tell anything apart: every negative ties with the positive.
    flat = np.ones((40, 40, 4), np.float32) / 2
    assert sand_auc(flat, flat, pts, pts)["auc"] == pytest.approx(50.0)
    # Unrelated images: the positive is as far as any negative.
    chance = sand_auc(desc, random_descriptors(40, 40, 16, seed=1), pts, pts, negatives_per_positive=50)
    assert 40.0 < chance["auc"] < 60.0


def test_flow_correspondences_drop_invalid_and_outside():
    flow = np.zeros((4, 5, 2), np.float32)
    flow[..., 0] = 2.0  # everything moves right by 2 px
    valid = np.ones((4, 5), bool)
    valid[0, 0] = False
    pts_a, pts_b = flow_correspondences(flow, valid)
    assert len(pts_a) == 4 * 3 - 1  # columns 0..2 stay inside, minus the invalid pixel
    np.testing.assert_array_equal(pts_b - pts_a, np.tile([2.0, 0.0], (len(pts_a), 1)))
