"""Trajectories and their TUM / KITTI files."""

import numpy as np
import pytest

from dense_descriptors_ros.geometry.se3 import se3_exp
from dense_descriptors_ros.geometry.trajectory import (
    Trajectory,
    read_kitti_poses,
    read_tum_trajectory,
    write_trajectory,
)


def random_trajectory(n: int = 10) -> Trajectory:
    twists = np.random.default_rng(0).normal(size=(n, 6))
    return Trajectory(np.arange(n) * 0.1 + 5.0, se3_exp(twists))


def test_trajectory_files_round_trip(tmp_path):
    traj = random_trajectory()
    write_trajectory(traj, tmp_path / "t.txt", "tum")
    write_trajectory(traj, tmp_path / "k.txt", "kitti")
    tum = read_tum_trajectory(tmp_path / "t.txt")
    kitti = read_kitti_poses(tmp_path / "k.txt", timestamps=traj.timestamps)
    np.testing.assert_allclose(tum.poses, traj.poses, atol=1e-8)
    np.testing.assert_allclose(tum.timestamps, traj.timestamps)
    np.testing.assert_allclose(kitti.poses, traj.poses, atol=1e-8)
    np.testing.assert_allclose(read_kitti_poses(tmp_path / "k.txt").timestamps, np.arange(10) * 0.1)  # 10 Hz
    with pytest.raises(ValueError, match="unknown trajectory format"):
        write_trajectory(traj, tmp_path / "x", "csv")


def test_bad_files_and_shapes_are_clear_errors(tmp_path):
    (tmp_path / "bad.txt").write_text("1 2 3\n")
    with pytest.raises(ValueError, match="8 numbers"):
        read_tum_trajectory(tmp_path / "bad.txt")
    with pytest.raises(ValueError, match="12 numbers"):
        read_kitti_poses(tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError, match="trajectory file not found"):
        read_tum_trajectory(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match=r"3 timestamps for 2 poses"):
        Trajectory(np.zeros(3), np.tile(np.eye(4), (2, 1, 1)))


def test_path_length_and_subset():
    poses = np.tile(np.eye(4), (4, 1, 1))
    poses[:, 0, 3] = [0.0, 1.0, 1.0, 3.0]
    traj = Trajectory(np.arange(4), poses)
    assert traj.path_length() == 3.0
    assert len(traj.subset(np.array([0, 3]))) == 2 and traj.subset(np.array([0, 3])).path_length() == 3.0
