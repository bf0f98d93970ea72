"""Every evaluation metric on hand-built cases with known answers (trajectory metrics: test/metrics/)."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptors_ros.evaluation import real_datasets
from dense_descriptors_ros.evaluation.error_percentile import error_percentiles, mean_error_percentile
from dense_descriptors_ros.evaluation.matching_metrics import (
    flow_correspondences,
    grid_points,
    match_nearest,
    mean_matching_accuracy,
    mutual_nearest_mask,
    pck,
    read_flo,
    sample_descriptors,
    sand_auc,
    warp_points_homography,
)
from dense_descriptors_ros.evaluation.segmentation_metrics import (
    boundary_f_measure,
    boundary_map,
    davis_j_and_f,
    region_jaccard,
)
from dense_descriptors_ros.evaluation.tracking_metrics import tapvid_metrics


def random_descriptors(h: int, w: int, d: int, seed: int = 0) -> np.ndarray:
    desc = np.random.default_rng(seed).normal(size=(h, w, d)).astype(np.float32)
    return desc / np.linalg.norm(desc, axis=2, keepdims=True)


# ---------------------------------------------------------------- matching


def test_identity_descriptors_match_perfectly():
    desc = random_descriptors(20, 30, 16)
    pts = grid_points(20, 30, 3)
    pred = match_nearest(desc, desc, pts)
    assert np.array_equal(pred, pts)
    assert pck(pred, pts) == {"pck@1": 1.0, "pck@3": 1.0, "pck@5": 1.0, "pck@10": 1.0}
    assert mutual_nearest_mask(desc, desc, pts, pred).all()


def test_translated_descriptors_recover_the_shift():
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


def test_sample_descriptors_interpolates_and_normalises():
    desc = np.zeros((2, 2, 2), np.float32)
    desc[:, 0] = [1, 0]
    desc[:, 1] = [0, 1]
    sampled = sample_descriptors(desc, np.array([[0.5, 0.5], [0.0, 1.0], [5.0, -3.0]]))
    np.testing.assert_allclose(sampled, [[2**-0.5, 2**-0.5], [1, 0], [0, 1]], atol=1e-6)


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


def test_sand_auc_perfect_and_chance():
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


def test_read_flo_round_trip(tmp_path):
    flow = np.random.default_rng(0).normal(size=(5, 7, 2)).astype(np.float32)
    path = tmp_path / "f.flo"
    path.write_bytes(np.float32(202021.25).tobytes() + np.array([7, 5], "<i4").tobytes() + flow.tobytes())
    np.testing.assert_array_equal(read_flo(path), flow)
    (tmp_path / "bad.flo").write_bytes(b"\0" * 20)
    with pytest.raises(ValueError, match=r"not a \.flo file"):
        read_flo(tmp_path / "bad.flo")


def test_flow_correspondences_drop_invalid_and_outside():
    flow = np.zeros((4, 5, 2), np.float32)
    flow[..., 0] = 2.0  # everything moves right by 2 px
    valid = np.ones((4, 5), bool)
    valid[0, 0] = False
    pts_a, pts_b = flow_correspondences(flow, valid)
    assert len(pts_a) == 4 * 3 - 1  # columns 0..2 stay inside, minus the invalid pixel
    np.testing.assert_array_equal(pts_b - pts_a, np.tile([2.0, 0.0], (len(pts_a), 1)))


def test_error_percentile_identity_is_zero_and_shuffled_is_chance():
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


# ---------------------------------------------------------------- segmentation


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


# ---------------------------------------------------------------- tracking


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


# ---------------------------------------------------------------- real data (skipped without shared/data)


@pytest.mark.data
def test_sintel_flow_parses(shared_dataset):
    shared_dataset("sintel")
    pair = real_datasets.load_sintel_pair("alley_1_easy")
    assert pair.flow.shape == (436, 1024, 2) and pair.frame1.shape == (436, 1024, 3)
    assert np.abs(pair.flow).max() < 20  # README: max |flow| 10.6 px for alley_1
    assert 0.01 < pair.occluded.mean() < 0.04
