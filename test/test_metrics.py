"""Trajectory metrics (ATE/RPE against evo) and the TUM / KITTI trajectory files."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dense_descriptors_ros.evaluation import real_datasets
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
