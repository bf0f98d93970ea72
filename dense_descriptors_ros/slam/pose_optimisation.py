"""Pose-only refinement of a tracked frame: vectorised Gauss-Newton with a Huber cost and outlier re-classification.

This stays in numpy rather than GTSAM: GTSAM has no stereo factor with fixed points, so a pose-only problem there
carries every point as a prior-held variable and is several times slower per frame (README, SLAM results).
Measurements are rectified stereo triples (uL, v, uR); a keypoint without a right match is a mono measurement whose
third residual is masked out. Residuals are in pixels with unit information, so the Huber threshold is
``sqrt(chi2 quantile)`` (7.815 for stereo with 3 dof, S-PTAM's 5.991 for 2 dof).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dense_descriptors_ros.geometry.camera import StereoCamera, stereo_pose_jacobian
from dense_descriptors_ros.geometry.se3 import se3_exp

CHI2_STEREO_95 = 7.815
CHI2_MONO_95 = 5.991


class PoseEstimate(NamedTuple):
    """A refined T_cam_world, which observations are inliers, and the 6x6 information matrix of the pose (a left
    twist (translation, rotation) on T_cam_world, i.e. a right perturbation of T_world_cam, unit pixel sigma)."""

    T_cam_world: np.ndarray
    inliers: np.ndarray
    information: np.ndarray


def stereo_residuals(
    camera: StereoCamera, points_cam: np.ndarray, measurements: np.ndarray, stereo: np.ndarray
) -> np.ndarray:
    """(M, 3) residuals measurement - projection, with the right column zeroed for mono observations."""
    r = measurements - camera.project(points_cam)
    r[~stereo, 2] = 0.0
    return r


def huber_weights(chi2: np.ndarray, delta: np.ndarray | float) -> np.ndarray:
    """IRLS weights of the Huber cost on the residual norm sqrt(chi2)."""
    norm = np.sqrt(chi2)
    return np.where(norm <= delta, 1.0, delta / np.maximum(norm, 1e-12))


def optimize_pose(
    camera: StereoCamera,
    T_cam_world: np.ndarray,
    points_world: np.ndarray,
    measurements: np.ndarray,
    stereo: np.ndarray,
    passes: int = 4,
    iterations: int = 10,
) -> PoseEstimate:
    """Pose-only Gauss-Newton with Huber cost and outlier re-classification (ORB-SLAM's 4 passes).

    Each pass optimises over the current inliers, then re-classifies every observation by its chi2 against
    7.815 (stereo) / 5.991 (mono); the last pass drops the robust kernel. The information matrix is J^T J of the
    final inliers at the returned pose.
    """
    T = T_cam_world.copy()
    inlier = np.ones(len(points_world), bool)
    threshold = np.where(stereo, CHI2_STEREO_95, CHI2_MONO_95)
    delta = np.sqrt(threshold)
    right_weight = np.where(stereo, 1.0, 0.0)  # masks the uR residual of mono observations
    damping = 1e-9 * np.eye(6)
    for p in range(passes):
        idx = np.nonzero(inlier)[0]
        if len(idx) < 3:
            return PoseEstimate(T, inlier, np.zeros((6, 6)))
        robust = p < passes - 1
        # Residuals and weights are (3, n), one contiguous row per component (the layout of stereo_pose_jacobian).
        pts, meas, dlt, right = (
            points_world[idx],
            np.ascontiguousarray(measurements[idx].T),
            delta[idx],
            right_weight[idx],
        )
        weights = np.ones((3, len(idx)))
        weights[2] = right
        for _ in range(iterations):
            pc = pts @ T[:3, :3].T + T[:3, 3]
            if np.any(pc[:, 2] <= 1e-6):
                break
            r = meas - camera.project(pc).T
            r[2] *= right
            if robust:
                w = np.sqrt(huber_weights(np.einsum("ij,ij->j", r, r), dlt))
                weights[0] = weights[1] = w
                weights[2] = w * right
            H, g = _normal_equations(camera, pc, weights, r)
            try:
                dx = np.linalg.solve(H + damping, g)
            except np.linalg.LinAlgError:
                return PoseEstimate(T, inlier, np.zeros((6, 6)))
            T = se3_exp(dx) @ T
            if np.abs(dx).max() < 1e-6:
                break
        pc = points_world @ T[:3, :3].T + T[:3, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = stereo_residuals(camera, pc, measurements, stereo)
        chi2 = np.einsum("mi,mi->m", r, r)
        inlier = (chi2 <= threshold) & (pc[:, 2] > 0)
    points = points_world[inlier]
    weights = np.ones((3, len(points)))
    weights[2] = right_weight[inlier]
    information, _ = _normal_equations(camera, points @ T[:3, :3].T + T[:3, 3], weights)
    return PoseEstimate(T, inlier, information)


def _normal_equations(
    camera: StereoCamera, points_cam: np.ndarray, weights: np.ndarray, residuals: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Gauss-Newton's J^T W^2 J and J^T W^2 r for (3, N) residual weights (and residuals): two BLAS products on the
    (6, 3N) weighted Jacobian instead of per-point 6x6 blocks."""
    Jw = (stereo_pose_jacobian(camera, points_cam) * weights).reshape(6, -1)
    g = None if residuals is None else Jw @ (residuals * weights).ravel()
    return Jw @ Jw.T, g
