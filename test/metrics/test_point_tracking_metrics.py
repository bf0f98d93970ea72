"""TAP-Vid point tracking metrics on a hand-built case."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptors_ros.metrics.point_tracking import tapvid_metrics


def test_tapvid_metrics_hand_built():
    gt = np.zeros((2, 3, 2))
    pred = gt.copy()
    pred[0, 1] = [3.0, 0.0]  # 3 px off: correct only at thresholds 4, 8, 16
    gt_occ = np.zeros((2, 3), bool)
    gt_occ[1, 2] = True
    pred_occ = np.zeros((2, 3), bool)  # misses the one occlusion
    m = tapvid_metrics(gt, gt_occ, pred, pred_occ, query_frames=np.zeros(2, int))
    # Evaluated: frames 1, 2 of both tracks (4 points, 3 visible).
    assert m["occlusion_accuracy"] == 0.75
    assert m["pts_within_1"] == pytest.approx(2 / 3) and m["pts_within_4"] == 1.0
    assert m["delta_avg"] == pytest.approx((2 / 3 * 2 + 3) / 5)
    # Jaccard at 1 px: TP 2, GT visible 3, FP = occluded predicted visible (1) + wrong visible (1) -> 2 / 5.
    assert m["jaccard_1"] == pytest.approx(2 / 5) and m["jaccard_16"] == pytest.approx(3 / 4)
    perfect = tapvid_metrics(gt, gt_occ, gt, gt_occ, query_frames=np.zeros(2, int), query_mode="strided")
    assert perfect["delta_avg"] == perfect["average_jaccard"] == perfect["occlusion_accuracy"] == 1.0
