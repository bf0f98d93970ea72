"""Every evaluation metric on hand-built cases with known answers (and ATE/RPE against evo)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

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
from dense_descriptors_ros.evaluation.trajectory_metrics import (
    Trajectory,
    absolute_trajectory_error,
    associate,
    kitti_relative_errors,
    read_kitti_poses,
    read_tum_trajectory,
    relative_pose_error,
    tum_ate,
    umeyama_alignment,
    write_kitti_poses,
    write_tum_trajectory,
)


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


# ---------------------------------------------------------------- trajectories


def smooth_trajectory(n: int = 60, seed: int = 0) -> Trajectory:
    t = np.linspace(0, 2 * np.pi, n)
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, :3, 3] = np.column_stack([3 * np.cos(t), 2 * np.sin(t), 0.3 * np.sin(3 * t)])
    poses[:, :3, :3] = Rotation.from_euler("zyx", np.column_stack([t, 0.2 * np.sin(t), 0.1 * t])).as_matrix()
    return Trajectory(np.arange(n) * 0.1, poses)


def noisy_transformed(traj: Trajectory, scale: float = 1.0, seed: int = 1) -> Trajectory:
    rng = np.random.default_rng(seed)
    transform = np.eye(4)
    transform[:3, :3] = Rotation.from_euler("xyz", [0.3, -0.2, 1.0]).as_matrix()
    transform[:3, 3] = [1.0, -2.0, 0.5]
    poses = transform @ traj.poses
    poses[:, :3, 3] *= scale
    poses[:, :3, 3] += rng.normal(scale=0.05, size=(len(traj), 3))
    poses[:, :3, :3] = Rotation.from_rotvec(rng.normal(scale=0.01, size=(len(traj), 3))).as_matrix() @ poses[:, :3, :3]
    return Trajectory(traj.timestamps + 0.001, poses)


def to_evo(traj: Trajectory):
    from evo.core.trajectory import PoseTrajectory3D

    return PoseTrajectory3D(poses_se3=list(traj.poses), timestamps=traj.timestamps.copy())


def evo_ape_rmse(reference: Trajectory, estimate: Trajectory, correct_scale: bool) -> float:
    from evo.core import metrics, sync

    ref, est = sync.associate_trajectories(to_evo(reference), to_evo(estimate), max_diff=0.02)
    est.align(ref, correct_scale=correct_scale)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((ref, est))
    return ape.get_statistic(metrics.StatisticsType.rmse)


@pytest.mark.parametrize(("alignment", "scale"), [("se3", 1.0), ("sim3", 0.5)])
def test_ate_equals_evo(alignment, scale):
    ref = smooth_trajectory()
    est = noisy_transformed(ref, scale=scale)
    ours = (
        tum_ate(est, ref)
        if alignment == "se3"
        else absolute_trajectory_error(*reversed(associate(ref, est)), alignment="sim3")
    )
    expected = evo_ape_rmse(ref, est, correct_scale=alignment == "sim3")
    assert ours["rmse"] == pytest.approx(expected, rel=1e-9)
    assert 0.03 < ours["rmse"] < 0.2  # the injected noise level, after alignment


def test_rpe_equals_evo():
    from evo.core import metrics

    ref = smooth_trajectory()
    est = noisy_transformed(ref)
    est = Trajectory(ref.timestamps, est.poses)
    ours = relative_pose_error(est, ref, delta=2)
    for relation, key in (
        (metrics.PoseRelation.translation_part, "translation"),
        (metrics.PoseRelation.rotation_angle_deg, "rotation_deg"),
    ):
        rpe = metrics.RPE(relation, delta=2, delta_unit=metrics.Unit.frames, all_pairs=True)
        rpe.process_data((to_evo(ref), to_evo(est)))
        assert ours[key]["rmse"] == pytest.approx(rpe.get_statistic(metrics.StatisticsType.rmse), rel=1e-9)


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(30, 3))
    rot = Rotation.from_euler("xyz", [0.1, 0.5, -0.7]).as_matrix()
    dst = 2.5 * src @ rot.T + [1, 2, 3]
    r, t, s = umeyama_alignment(src, dst, with_scale=True)
    np.testing.assert_allclose(r, rot, atol=1e-10)
    np.testing.assert_allclose(t, [1, 2, 3], atol=1e-10)
    assert s == pytest.approx(2.5)
    with pytest.raises(ValueError, match="at least 3"):
        umeyama_alignment(src[:2], dst[:2])


def test_kitti_relative_errors_on_a_drifted_trajectory():
    n = 301  # a 300 m straight drive along z, 1 m per frame
    gt_poses = np.tile(np.eye(4), (n, 1, 1))
    gt_poses[:, 2, 3] = np.arange(n, dtype=float)
    gt = Trajectory(np.arange(n) * 0.1, gt_poses)
    drifted = gt_poses.copy()
    drifted[:, 2, 3] *= 1.02  # 2 % scale drift
    result = kitti_relative_errors(Trajectory(gt.timestamps, drifted), gt)
    assert result["t_rel_percent"] == pytest.approx(2.0)
    assert result["r_rel_deg_per_100m"] == pytest.approx(0.0, abs=1e-6)
    # A constant yaw of 1 degree per 100 m on top: r_rel is 1 deg / 100 m.
    yawed = gt_poses.copy()
    yawed[:, :3, :3] = Rotation.from_euler("y", np.arange(n)[:, None] * 0.01, degrees=True).as_matrix()
    result = kitti_relative_errors(Trajectory(gt.timestamps, yawed), gt)
    assert result["r_rel_deg_per_100m"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shorter than every segment"):
        kitti_relative_errors(gt.subset(np.arange(20)), gt.subset(np.arange(20)))


def test_trajectory_files_round_trip(tmp_path):
    traj = smooth_trajectory(10)
    write_tum_trajectory(traj, tmp_path / "t.txt")
    write_kitti_poses(traj, tmp_path / "k.txt")
    tum = read_tum_trajectory(tmp_path / "t.txt")
    kitti = read_kitti_poses(tmp_path / "k.txt", timestamps=traj.timestamps)
    np.testing.assert_allclose(tum.poses, traj.poses, atol=1e-8)
    np.testing.assert_allclose(kitti.poses, traj.poses, atol=1e-8)
    (tmp_path / "bad.txt").write_text("1 2 3\n")
    with pytest.raises(ValueError, match="8 numbers"):
        read_tum_trajectory(tmp_path / "bad.txt")


# ---------------------------------------------------------------- real data (skipped without shared/data)


def _dataset(name: str):
    try:
        return real_datasets.dataset_dir(name)
    except real_datasets.DatasetMissing as err:
        pytest.skip(str(err))


@pytest.mark.data
def test_tum_groundtruth_parses_and_ate_matches_evo():
    folder = _dataset("tum_fr2_desk")
    gt = read_tum_trajectory(folder / "groundtruth.txt")
    assert len(gt) == 572
    assert 0.4 < gt.path_length() < 0.55  # README: 0.47 m path
    from evo.tools import file_interface

    evo_gt = file_interface.read_tum_trajectory_file(str(folder / "groundtruth.txt"))
    np.testing.assert_allclose(np.array(evo_gt.poses_se3), gt.poses, atol=1e-9)
    est = noisy_transformed(gt, seed=3)
    est = Trajectory(gt.timestamps, est.poses)
    assert tum_ate(est, gt)["rmse"] == pytest.approx(evo_ape_rmse(gt, est, correct_scale=False), rel=1e-9)


@pytest.mark.data
def test_kitti_poses_parse():
    folder = _dataset("kitti_00_100_119")
    times = np.loadtxt(folder / "times.txt")
    gt = read_kitti_poses(folder / "poses.txt", timestamps=times)
    assert len(gt) == 20
    assert gt.path_length() == pytest.approx(7.4, abs=0.1)  # README: 7.4 m
    from evo.tools import file_interface

    evo_gt = file_interface.read_kitti_poses_file(str(folder / "poses.txt"))
    np.testing.assert_allclose(np.array(evo_gt.poses_se3), gt.poses, atol=1e-9)
    result = kitti_relative_errors(gt, gt, lengths=(2.0, 5.0), step=1)
    assert result["t_rel_percent"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.data
def test_sintel_flow_parses():
    _dataset("sintel")
    pair = real_datasets.load_sintel_pair("alley_1_easy")
    assert pair.flow.shape == (436, 1024, 2) and pair.frame1.shape == (436, 1024, 3)
    assert np.abs(pair.flow).max() < 20  # README: max |flow| 10.6 px for alley_1
    assert 0.01 < pair.occluded.mean() < 0.04
