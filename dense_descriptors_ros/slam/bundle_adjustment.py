"""Stereo bundle adjustment and pose-only refinement: vectorised Levenberg-Marquardt with a Huber cost.

Measurements are rectified stereo triples (uL, v, uR); a keypoint without a right match is a mono measurement whose
third residual is masked out. Residuals are in pixels with unit information, so the Huber threshold is
``sqrt(chi2 quantile)`` (7.815 for stereo with 3 dof, S-PTAM's 5.991 for 2 dof).

The windowed BA eliminates the points with the Schur complement: the (6K x 3P) pose-point block is a
``scipy.sparse`` matrix built from per-observation 6x3 blocks, the point blocks are inverted in one batched
``np.linalg.inv``, and the reduced 6K x 6K camera system is solved densely (K is a local window, tens of keyframes).
numpy and scipy release the GIL in these kernels, so a mapping thread leaves the tracking thread room to run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from dense_descriptors_ros.geometry.camera import StereoCamera, stereo_pose_jacobian, stereo_projection_jacobian
from dense_descriptors_ros.geometry.se3 import point_pose_jacobian, se3_exp

CHI2_STEREO_95 = 7.815
CHI2_MONO_95 = 5.991


@dataclass
class BundleAdjustmentProblem:
    """Poses (K, 4, 4) T_cam_world, points (P, 3) world, and M observations of point ``point_index[i]`` in camera
    ``camera_index[i]`` with measurement (uL, v, uR) (uR ignored where ``stereo`` is False)."""

    poses: np.ndarray
    points: np.ndarray
    camera_index: np.ndarray
    point_index: np.ndarray
    measurements: np.ndarray
    stereo: np.ndarray
    fixed_poses: np.ndarray

    def __post_init__(self) -> None:
        m = len(self.camera_index)
        for name in ("point_index", "measurements", "stereo"):
            if len(getattr(self, name)) != m:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, expected {m} (one per observation)")
        if self.poses.shape[1:] != (4, 4) or self.points.shape[1:] != (3,):
            raise ValueError(f"expected poses (K, 4, 4) and points (P, 3), got {self.poses.shape}, {self.points.shape}")
        if len(self.fixed_poses) != len(self.poses):
            raise ValueError("fixed_poses needs one flag per pose")


@dataclass
class BundleAdjustmentResult:
    poses: np.ndarray
    points: np.ndarray
    chi2: np.ndarray  # per observation, at the solution
    iterations: int
    initial_cost: float
    final_cost: float


def stereo_residuals(
    camera: StereoCamera, points_cam: np.ndarray, measurements: np.ndarray, stereo: np.ndarray
) -> np.ndarray:
    """(M, 3) residuals measurement - projection, with the right column zeroed for mono observations."""
    r = measurements - camera.project(points_cam)
    r[~stereo, 2] = 0.0
    return r


def huber_weights(chi2: np.ndarray, delta: float) -> np.ndarray:
    """IRLS weights of the Huber cost on the residual norm sqrt(chi2)."""
    norm = np.sqrt(chi2)
    return np.where(norm <= delta, 1.0, delta / np.maximum(norm, 1e-12))


def huber_cost(chi2: np.ndarray, delta: float) -> float:
    norm = np.sqrt(chi2)
    return float(np.sum(np.where(norm <= delta, chi2, 2.0 * delta * norm - delta * delta)))


def _block_diagonal(blocks: np.ndarray) -> sp.csr_matrix:
    """(P, b, b) blocks -> sparse (P*b, P*b) block-diagonal matrix."""
    p, b, _ = blocks.shape
    base = (np.arange(p) * b)[:, None, None]
    rows = np.broadcast_to(base + np.arange(b)[None, :, None], blocks.shape).ravel()
    cols = np.broadcast_to(base + np.arange(b)[None, None, :], blocks.shape).ravel()
    return sp.csr_matrix((blocks.ravel(), (rows, cols)), shape=(p * b, p * b))


def _linearise(camera: StereoCamera, poses: np.ndarray, points: np.ndarray, problem: BundleAdjustmentProblem):
    R = poses[problem.camera_index, :3, :3]
    t = poses[problem.camera_index, :3, 3]
    pc = np.einsum("mij,mj->mi", R, points[problem.point_index]) + t
    r = stereo_residuals(camera, pc, problem.measurements, problem.stereo)
    Jp = stereo_projection_jacobian(camera, pc)
    Jp[~problem.stereo, 2, :] = 0.0
    A = -np.einsum("mij,mjk->mik", Jp, point_pose_jacobian(pc))  # d residual / d pose twist (M, 3, 6)
    B = -np.einsum("mij,mjk->mik", Jp, R)  # d residual / d point (M, 3, 3)
    return r, A, B


def solve_bundle_adjustment(
    camera: StereoCamera,
    problem: BundleAdjustmentProblem,
    iterations: int = 10,
    huber_delta: float = float(np.sqrt(CHI2_STEREO_95)),
    outlier_chi2: float | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BundleAdjustmentResult:
    """Schur-complement LM on a stereo BA problem; ``should_stop()`` (optional) aborts between iterations.

    With ``outlier_chi2`` the solve runs twice, as in S-PTAM / ORB-SLAM local BA: after the robust pass the
    observations whose chi2 exceeds it are left out and the rest are optimised again. ``chi2`` in the result
    covers every observation of the problem.
    """
    result = _solve_lm(camera, problem, iterations, huber_delta, should_stop)
    if outlier_chi2 is None:
        return result
    inlier = result.chi2 <= outlier_chi2
    if inlier.all() or inlier.sum() < 3:
        return result
    sub = BundleAdjustmentProblem(
        result.poses,
        result.points,
        problem.camera_index[inlier],
        problem.point_index[inlier],
        problem.measurements[inlier],
        problem.stereo[inlier],
        problem.fixed_poses,
    )
    second = _solve_lm(camera, sub, iterations, huber_delta, should_stop)
    r, _, _ = _linearise(camera, second.poses, second.points, problem)
    chi2 = np.einsum("mi,mi->m", r, r)
    return BundleAdjustmentResult(
        second.poses, second.points, chi2, result.iterations + second.iterations, result.initial_cost, second.final_cost
    )


def _solve_lm(
    camera: StereoCamera,
    problem: BundleAdjustmentProblem,
    iterations: int,
    huber_delta: float,
    should_stop: Callable[[], bool] | None,
    initial_lambda: float = 1e-3,
) -> BundleAdjustmentResult:
    poses = problem.poses.copy()
    points = problem.points.copy()
    K, P = len(poses), len(points)
    free = np.nonzero(~problem.fixed_poses)[0]
    free_slot = np.full(K, -1)
    free_slot[free] = np.arange(len(free))
    cam, pt = problem.camera_index, problem.point_index
    lam = initial_lambda
    if len(free) == 0 and P == 0:
        raise ValueError("bundle adjustment problem has nothing to optimise")

    r, A, B = _linearise(camera, poses, points, problem)
    chi2 = np.einsum("mi,mi->m", r, r)
    cost = huber_cost(chi2, huber_delta)
    initial_cost = cost
    it = 0
    for it in range(1, iterations + 1):  # noqa: B007 (the count is reported)
        if should_stop is not None and should_stop():
            break
        w = huber_weights(chi2, huber_delta)[:, None, None]
        wA, wB = w * A, w * B
        Hpp_obs = np.einsum("mki,mkj->mij", wA, A)
        Hll_obs = np.einsum("mki,mkj->mij", wB, B)
        Hpl_obs = np.einsum("mki,mkj->mij", wA, B)
        gp_obs = np.einsum("mki,mk->mi", wA, r)
        gl_obs = np.einsum("mki,mk->mi", wB, r)
        Hpp = np.zeros((K, 6, 6))
        np.add.at(Hpp, cam, Hpp_obs)
        Hll = np.zeros((P, 3, 3))
        np.add.at(Hll, pt, Hll_obs)
        gp = np.zeros((K, 6))
        np.add.at(gp, cam, gp_obs)
        gl = np.zeros((P, 3))
        np.add.at(gl, pt, gl_obs)

        free_obs = free_slot[cam] >= 0
        rows = (free_slot[cam[free_obs]] * 6)[:, None, None] + np.arange(6)[None, :, None]
        cols = (pt[free_obs] * 3)[:, None, None] + np.arange(3)[None, None, :]
        W = sp.csr_matrix(
            (
                Hpl_obs[free_obs].ravel(),
                (np.broadcast_to(rows, (len(rows), 6, 3)).ravel(), np.broadcast_to(cols, (len(cols), 6, 3)).ravel()),
            ),
            shape=(6 * len(free), 3 * P),
        )
        while True:
            Hpp_d = Hpp[free] + lam * np.einsum("kii->ki", Hpp[free])[:, :, None] * np.eye(6)
            Hll_d = Hll + (lam * np.einsum("pii->pi", Hll) + 1e-9)[:, :, None] * np.eye(3)
            Hll_inv = np.linalg.inv(Hll_d)
            Hll_inv_sp = _block_diagonal(Hll_inv)
            S = -(W @ Hll_inv_sp @ W.T).toarray()
            for k in range(len(free)):
                S[6 * k : 6 * k + 6, 6 * k : 6 * k + 6] += Hpp_d[k]
            rhs = -gp[free].ravel() + W @ (Hll_inv_sp @ gl.ravel())
            try:
                dp = np.linalg.solve(S, rhs) if len(free) else np.zeros(0)
            except np.linalg.LinAlgError:
                dp = np.linalg.lstsq(S, rhs, rcond=None)[0]
            dl = -np.einsum("pij,pj->pi", Hll_inv, gl + (W.T @ dp).reshape(P, 3))
            new_poses = poses.copy()
            new_poses[free] = se3_exp(dp.reshape(-1, 6)) @ poses[free]
            new_points = points + dl
            r_new, A_new, B_new = _linearise(camera, new_poses, new_points, problem)
            chi2_new = np.einsum("mi,mi->m", r_new, r_new)
            new_cost = huber_cost(chi2_new, huber_delta)
            if np.isfinite(new_cost) and new_cost < cost:
                converged = (cost - new_cost) < 1e-6 * cost
                poses, points, r, A, B, chi2, cost = new_poses, new_points, r_new, A_new, B_new, chi2_new, new_cost
                lam = max(lam / 3.0, 1e-9)
                break
            lam *= 5.0
            if lam > 1e8:
                converged = True
                break
        if converged:
            break
    return BundleAdjustmentResult(poses, points, chi2, it, initial_cost, cost)


def optimize_pose(
    camera: StereoCamera,
    T_cam_world: np.ndarray,
    points_world: np.ndarray,
    measurements: np.ndarray,
    stereo: np.ndarray,
    passes: int = 4,
    iterations: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Pose-only Gauss-Newton with Huber cost and outlier re-classification (ORB-SLAM's 4 passes).

    Each pass optimises over the current inliers, then re-classifies every observation by its chi2 against
    7.815 (stereo) / 5.991 (mono); the last pass drops the robust kernel. Returns the pose and the inlier mask.
    """
    T = T_cam_world.copy()
    inlier = np.ones(len(points_world), bool)
    threshold = np.where(stereo, CHI2_STEREO_95, CHI2_MONO_95)
    delta = np.sqrt(threshold)
    mono_mask = np.where(stereo, 1.0, 0.0)
    for p in range(passes):
        idx = np.nonzero(inlier)[0]
        if len(idx) < 3:
            return T, inlier
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
                return T, inlier
            T = se3_exp(dx) @ T
            if np.abs(dx).max() < 1e-6:
                break
        pc = points_world @ T[:3, :3].T + T[:3, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = stereo_residuals(camera, pc, measurements, stereo)
        chi2 = np.einsum("mi,mi->m", r, r)
        inlier = (chi2 <= threshold) & (pc[:, 2] > 0)
    return T, inlier
