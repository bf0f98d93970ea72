"""Trajectories: timestamped camera poses and their TUM / KITTI text files.

Poses are 4x4 homogeneous matrices T_world_cam (they map camera points into the world frame), as in the TUM
(`timestamp tx ty tz qx qy qz qw`, scalar-last quaternion) and KITTI (12 numbers, row-major 3x4 [R|t]) files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from dense_descriptors_ros.io.atomic_files import atomic_path

TRAJECTORY_FORMATS = ("tum", "kitti")


@dataclass
class Trajectory:
    """Timestamped poses: ``timestamps`` (N,) seconds, ``poses`` (N, 4, 4) T_world_cam."""

    timestamps: np.ndarray
    poses: np.ndarray

    def __post_init__(self) -> None:
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64).reshape(-1)
        self.poses = np.asarray(self.poses, dtype=np.float64)
        if self.poses.ndim != 3 or self.poses.shape[1:] != (4, 4):
            raise ValueError(f"poses must be (N, 4, 4) matrices, got shape {self.poses.shape}")
        if len(self.timestamps) != len(self.poses):
            raise ValueError(f"{len(self.timestamps)} timestamps for {len(self.poses)} poses")

    def __len__(self) -> int:
        return len(self.poses)

    @property
    def positions(self) -> np.ndarray:
        """(N, 3) camera centres in the world frame."""
        return self.poses[:, :3, 3]

    def path_length(self) -> float:
        """Total travelled distance (sum of distances between consecutive positions)."""
        return float(np.linalg.norm(np.diff(self.positions, axis=0), axis=1).sum())

    def subset(self, indices: np.ndarray) -> Trajectory:
        return Trajectory(self.timestamps[indices], self.poses[indices])


def poses_from_tum_rows(rows: np.ndarray) -> np.ndarray:
    """(N, 7) rows ``tx ty tz qx qy qz qw`` -> (N, 4, 4) poses."""
    rows = np.asarray(rows, dtype=np.float64)
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    poses[:, :3, :3] = Rotation.from_quat(rows[:, 3:7]).as_matrix()  # scipy quaternions are scalar-last too
    poses[:, :3, 3] = rows[:, :3]
    return poses


def read_tum_trajectory(path: str | Path) -> Trajectory:
    """Read a TUM trajectory file (``timestamp tx ty tz qx qy qz qw``; '#' lines are comments)."""
    path = Path(path)
    rows = _read_numeric_rows(path, comment="#")
    if rows.shape[1] != 8:
        raise ValueError(f"{path}: TUM rows need 8 numbers (timestamp tx ty tz qx qy qz qw), got {rows.shape[1]}")
    return Trajectory(rows[:, 0], poses_from_tum_rows(rows[:, 1:]))


def read_kitti_poses(path: str | Path, timestamps: np.ndarray | None = None) -> Trajectory:
    """Read a KITTI pose file (12 numbers per row, row-major 3x4 [R|t]); timestamps default to 0.1 s steps (10 Hz)."""
    path = Path(path)
    rows = _read_numeric_rows(path, comment="#")
    if rows.shape[1] != 12:
        raise ValueError(f"{path}: KITTI pose rows need 12 numbers (row-major 3x4), got {rows.shape[1]}")
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    poses[:, :3, :4] = rows.reshape(-1, 3, 4)
    stamps = np.arange(len(rows)) * 0.1 if timestamps is None else np.asarray(timestamps, dtype=np.float64)
    return Trajectory(stamps, poses)


def write_tum_trajectory(trajectory: Trajectory, path: str | Path) -> None:
    """Write ``timestamp tx ty tz qx qy qz qw`` rows."""
    quats = Rotation.from_matrix(trajectory.poses[:, :3, :3]).as_quat()
    rows = np.column_stack([trajectory.timestamps, trajectory.positions, quats])
    with atomic_path(path) as tmp:
        np.savetxt(tmp, rows, fmt="%.9f", header="timestamp tx ty tz qx qy qz qw")


def write_kitti_poses(trajectory: Trajectory, path: str | Path) -> None:
    """Write 12 numbers per row (row-major 3x4 [R|t])."""
    with atomic_path(path) as tmp:
        np.savetxt(tmp, trajectory.poses[:, :3, :4].reshape(-1, 12), fmt="%.9e")


def write_trajectory(trajectory: Trajectory, path: str | Path, fmt: str = "tum") -> None:
    """Write a trajectory as TUM (``t tx ty tz qx qy qz qw``) or KITTI (12 numbers per row) text."""
    if fmt == "tum":
        write_tum_trajectory(trajectory, path)
    elif fmt == "kitti":
        write_kitti_poses(trajectory, path)
    else:
        raise ValueError(f"unknown trajectory format {fmt!r}; expected one of {TRAJECTORY_FORMATS}")


def _read_numeric_rows(path: Path, comment: str) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"trajectory file not found: {path}")
    rows = [line.replace(",", " ").split() for line in path.read_text().splitlines()]
    rows = [r for r in rows if r and not r[0].startswith(comment)]
    if not rows:
        raise ValueError(f"{path}: no pose rows")
    try:
        return np.array(rows, dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{path}: rows must be numbers with the same count per row ({err})") from None
