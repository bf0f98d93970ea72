"""Trajectory metrics for SLAM / visual odometry: ATE (after SE3 or Sim3 Umeyama alignment), RPE, KITTI t_rel/r_rel.

Trajectories are :class:`dense_descriptors_ros.geometry.trajectory.Trajectory` (poses T_world_cam). The conventions
follow evo (Umeyama alignment, nearest-timestamp association, RPE as E_ij = (Q_i^-1 Q_j)^-1 (P_i^-1 P_j)) and the
KITTI odometry devkit (errors over path segments of fixed length).
"""

from __future__ import annotations

import numpy as np

from dense_descriptors_ros.geometry.se3 import rotation_angle
from dense_descriptors_ros.geometry.trajectory import Trajectory

ALIGNMENTS = ("se3", "sim3", "none")
KITTI_SEGMENT_LENGTHS = (100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0)


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
        "rotation_deg": _statistics(np.degrees(rotation_angle(error[:, :3, :3]))),
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
            r_errors.append(rotation_angle(error[:3, :3]) / length)
    if not t_errors:
        raise ValueError(
            f"the ground-truth path ({distances[-1]:.1f} m) is shorter than every segment length {list(lengths)}"
        )
    return {
        "t_rel_percent": float(np.mean(t_errors) * 100.0),
        "r_rel_deg_per_100m": float(np.degrees(np.mean(r_errors)) * 100.0),
        "segments": len(t_errors),
    }
