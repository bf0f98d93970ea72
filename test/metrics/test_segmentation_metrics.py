"""DAVIS J and F on hand-computed masks and boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptors_ros.metrics.segmentation import (
    boundary_f_measure,
    boundary_map,
    davis_j_and_f,
    region_jaccard,
)


def test_region_jaccard_hand_computed():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[0:2, 0:2] = True  # 4 pixels
    b[0:2, 1:3] = True  # 4 pixels, 2 shared
    assert region_jaccard(a, b) == pytest.approx(2 / 6)
    assert region_jaccard(a, a) == 1.0
    assert region_jaccard(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0


def test_boundary_map_of_a_square():
    mask = np.zeros((6, 6), bool)
    mask[1:4, 1:4] = True
    # DAVIS seg2bmap marks pixels that differ from their right, lower or lower-right neighbour: a 4x4 ring that
    # sits half a pixel up-left of the square.
    expected = np.zeros((6, 6), bool)
    expected[0, 0:4] = expected[3, 0:4] = True
    expected[1:3, 0] = expected[1:3, 3] = True
    np.testing.assert_array_equal(boundary_map(mask), expected)


def test_boundary_f_measure_hand_computed():
    gt = np.zeros((10, 10), bool)
    gt[2:5, 2:5] = True  # boundary: a 12-pixel ring
    pred = np.roll(gt, 1, axis=1)  # shifted right by 1 px: its ring shares 3 + 3 pixels of the top/bottom rows
    assert boundary_map(gt).sum() == boundary_map(pred).sum() == 12
    assert boundary_f_measure(pred, gt, bound_th=0) == pytest.approx(0.5)  # exact overlap: P = R = 6/12
    assert boundary_f_measure(pred, gt, bound_th=1) == 1.0  # every pixel within 1 px of the other ring
    assert boundary_f_measure(gt, gt) == 1.0
    far = np.roll(gt, 5, axis=0)
    assert boundary_f_measure(far, gt, bound_th=1) == 0.0
    assert boundary_f_measure(np.zeros_like(gt), gt) == 0.0
    assert boundary_f_measure(np.zeros_like(gt), np.zeros_like(gt)) == 1.0


def test_davis_j_and_f_skips_first_and_last():
    gt = [np.eye(5, dtype=bool)] * 4
    pred = [np.zeros((5, 5), bool), np.eye(5, dtype=bool), np.zeros((5, 5), bool), np.zeros((5, 5), bool)]
    result = davis_j_and_f(pred, gt)
    assert result["frames"] == 2
    assert result["J_mean"] == 0.5 and result["F_mean"] == 0.5 and result["J&F_mean"] == 0.5
    assert result["J_recall"] == 0.5
    assert davis_j_and_f(pred, gt, skip_first_last=False)["J_mean"] == 0.25
