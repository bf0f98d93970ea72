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
    mono_mask = np.where(stereo, 1.0, 0.0)
    for p in range(passes):
        idx = np.nonzero(inlier)[0]
        if len(idx) < 3:
            return PoseEstimate(T, inlier, np.zeros((6, 6)))
        pts, meas, mask, dlt = points_world[idx], measurements[idx], mono_mask[idx], delta[idx]
        for _ in range(iterations):
            pc = pts @ T[:3, :3].T + T[:3, 3]
            if np.any(pc[:, 2] <= 1e-6):
                break
            r = meas - camera.project(pc)
            r[:, 2] *= mask
            J = stereo_pose_jacobian(camera, pc)
            J[:, 2, :] *= mask[:, None]
            chi2 = np.einsum("mi,mi->m", r, r)
            w = np.sqrt(huber_weights(chi2, dlt)) if p < passes - 1 else np.ones(len(idx))
            Jw = (J * w[:, None, None]).reshape(-1, 6)
            H = Jw.T @ Jw
            g = Jw.T @ (r * w[:, None]).ravel()
            try:
                dx = np.linalg.solve(H + 1e-9 * np.eye(6), g)
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
    return PoseEstimate(T, inlier, _information(camera, T, points_world[inlier], mono_mask[inlier]))


def _information(camera: StereoCamera, T_cam_world: np.ndarray, points: np.ndarray, stereo: np.ndarray) -> np.ndarray:
    if len(points) == 0:
        return np.zeros((6, 6))
    J = stereo_pose_jacobian(camera, points @ T_cam_world[:3, :3].T + T_cam_world[:3, 3])
    J[:, 2, :] *= stereo[:, None]
    J = J.reshape(-1, 6)
    return J.T @ J
