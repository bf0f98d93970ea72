"""Trajectory metrics for SLAM / visual odometry: ATE (after SE3 or Sim3 Umeyama alignment), RPE, KITTI t_rel/r_rel.

Poses are 4x4 homogeneous matrices T_world_cam (they map camera points into the world frame), as in the TUM
(`timestamp tx ty tz qx qy qz qw`, scalar-last quaternion) and KITTI (12 numbers, row-major 3x4 [R|t]) files.
The conventions follow evo (Umeyama alignment, nearest-timestamp association, RPE as
E_ij = (Q_i^-1 Q_j)^-1 (P_i^-1 P_j)) and the KITTI odometry devkit (errors over path segments of fixed length).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

ALIGNMENTS = ("se3", "sim3", "none")
KITTI_SEGMENT_LENGTHS = (100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0)


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
    np.savetxt(path, rows, fmt="%.9f", header="timestamp tx ty tz qx qy qz qw")


def write_kitti_poses(trajectory: Trajectory, path: str | Path) -> None:
    """Write 12 numbers per row (row-major 3x4 [R|t])."""
    np.savetxt(path, trajectory.poses[:, :3, :4].reshape(-1, 12), fmt="%.9e")


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


def associate(reference: Trajectory, estimate: Trajectory, max_diff: float = 0.02) -> tuple[Trajectory, Trajectory]:
    """Pair every reference pose with the estimate pose nearest in time (within ``max_diff`` s), like evo's sync.

    Returns (reference, estimate) restricted to the matched pairs, in reference order.
    """
    stamps = estimate.timestamps
    order = np.argsort(stamps)
    sorted_stamps = stamps[order]
    ref_idx, est_idx = [], []
    for i, t in enumerate(reference.timestamps):
        j = int(np.searchsorted(sorted_stamps, t))
        candidates = [k for k in (j - 1, j) if 0 <= k < len(sorted_stamps)]
        best = min(candidates, key=lambda k: abs(sorted_stamps[k] - t))
        if abs(sorted_stamps[best] - t) <= max_diff:
            ref_idx.append(i)
            est_idx.append(order[best])
    if not ref_idx:
        raise ValueError(f"no timestamps of the two trajectories are within {max_diff} s of each other")
    return reference.subset(np.array(ref_idx)), estimate.subset(np.array(est_idx))


def umeyama_alignment(
    source: np.ndarray, target: np.ndarray, with_scale: bool = False
) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares similarity (R, t, s) with target ~ s R source + t, for (N, 3) point sets (Umeyama 1991)."""
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3:
        raise ValueError(f"expected two (N, 3) point sets of the same shape, got {source.shape} and {target.shape}")
    if len(source) < 3:
        raise ValueError(f"Umeyama alignment needs at least 3 points, got {len(source)}")
    mean_s, mean_t = source.mean(0), target.mean(0)
    src_c, tgt_c = source - mean_s, target - mean_t
    cov = tgt_c.T @ src_c / len(source)
    u, d, vt = np.linalg.svd(cov)
    if np.count_nonzero(d > np.finfo(float).eps) < 2:
        raise ValueError("degenerate point set (all points on a line): Umeyama alignment is not defined")
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1  # keep a proper rotation (no reflection)
    rotation = u @ sign @ vt
    variance = (src_c**2).sum() / len(source)
    scale = float(np.trace(np.diag(d) @ sign) / variance) if with_scale else 1.0
    translation = mean_t - scale * rotation @ mean_s
    return rotation, translation, scale


def align_trajectory(estimate: Trajectory, reference: Trajectory, alignment: str = "se3") -> Trajectory:
    """Estimate moved onto the reference by the Umeyama fit of positions ('se3', 'sim3' with scale, or 'none')."""
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    if len(estimate) != len(reference):
        raise ValueError(f"trajectories must be associated first: {len(estimate)} vs {len(reference)} poses")
    if alignment == "none":
        return estimate
    rotation, translation, scale = umeyama_alignment(
        estimate.positions, reference.positions, with_scale=alignment == "sim3"
    )
    poses = estimate.poses.copy()
    poses[:, :3, :3] = rotation @ poses[:, :3, :3]
    poses[:, :3, 3] = scale * poses[:, :3, 3] @ rotation.T + translation
    return Trajectory(estimate.timestamps, poses)


def _statistics(errors: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "mean": float(np.mean(errors)),
        "median": float(np.median(errors)),
        "std": float(np.std(errors)),
        "min": float(np.min(errors)),
        "max": float(np.max(errors)),
    }


def absolute_trajectory_error(estimate: Trajectory, reference: Trajectory, alignment: str = "se3") -> dict[str, float]:
    """ATE: statistics of the position error (metres) after alignment; poses must already be associated."""
    aligned = align_trajectory(estimate, reference, alignment)
    errors = np.linalg.norm(aligned.positions - reference.positions, axis=1)
    return {**_statistics(errors), "pairs": len(errors)}


def tum_ate(estimate: Trajectory, reference: Trajectory, max_diff: float = 0.02) -> dict[str, float]:
    """TUM benchmark ATE: associate by timestamp (max 0.02 s), SE3 alignment (Horn), position RMSE in metres."""
    ref, est = associate(reference, estimate, max_diff)
    return absolute_trajectory_error(est, ref, alignment="se3")


def _rotation_angle(rotations: np.ndarray) -> np.ndarray:
    """Rotation angle (radians) of (..., 3, 3) matrices."""
    cos = (np.trace(rotations, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))


def relative_pose_error(
    estimate: Trajectory, reference: Trajectory, delta: int = 1, alignment: str = "none"
) -> dict[str, dict[str, float]]:
    """RPE over all pose pairs ``delta`` frames apart (evo all_pairs=True): translation (m), rotation (deg)."""
    if delta < 1:
        raise ValueError(f"delta must be >= 1 frame, got {delta}")
    est = align_trajectory(estimate, reference, alignment)
    if len(est) <= delta:
        raise ValueError(f"RPE with delta={delta} needs more than {delta} poses, got {len(est)}")
    inv = np.linalg.inv
    ref_rel = inv(reference.poses[:-delta]) @ reference.poses[delta:]
    est_rel = inv(est.poses[:-delta]) @ est.poses[delta:]
    error = inv(ref_rel) @ est_rel
    return {
        "translation": _statistics(np.linalg.norm(error[:, :3, 3], axis=1)),
        "rotation_deg": _statistics(np.degrees(_rotation_angle(error[:, :3, :3]))),
    }


def kitti_relative_errors(
    estimate: Trajectory,
    reference: Trajectory,
    lengths: tuple[float, ...] = KITTI_SEGMENT_LENGTHS,
    step: int = 10,
) -> dict[str, float]:
    """KITTI odometry devkit errors: t_rel (%) and r_rel (deg per 100 m) averaged over all segments.

    For every ``step``-th first frame and every segment length, the last frame is the first one whose travelled
    ground-truth distance reaches the length; the error is inv(delta_est) @ delta_gt over that segment, divided
    by the length. Short sequences need shorter ``lengths`` than the devkit's 100..800 m.
    """
    if len(estimate) != len(reference):
        raise ValueError(f"trajectories must be associated first: {len(estimate)} vs {len(reference)} poses")
    distances = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(reference.positions, axis=0), axis=1))])
    inv = np.linalg.inv
    t_errors, r_errors = [], []
    for first in range(0, len(reference), step):
        for length in lengths:
            reached = np.nonzero(distances >= distances[first] + length)[0]
            if len(reached) == 0:
                continue
            last = reached[0]
            delta_gt = inv(reference.poses[first]) @ reference.poses[last]
            delta_est = inv(estimate.poses[first]) @ estimate.poses[last]
            error = inv(delta_est) @ delta_gt
            t_errors.append(np.linalg.norm(error[:3, 3]) / length)
            r_errors.append(_rotation_angle(error[:3, :3]) / length)
    if not t_errors:
        raise ValueError(
            f"the ground-truth path ({distances[-1]:.1f} m) is shorter than every segment length {list(lengths)}"
        )
    return {
        "t_rel_percent": float(np.mean(t_errors) * 100.0),
        "r_rel_deg_per_100m": float(np.degrees(np.mean(r_errors)) * 100.0),
        "segments": len(t_errors),
    }
