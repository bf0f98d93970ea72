"""Pose-only refinement and the Schur-complement bundle adjustment (converges to ground truth and agrees with
scipy.optimize.least_squares on the same problem)."""

import numpy as np
import scipy.sparse as sp
from scipy.optimize import least_squares

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.se3 import invert_pose, se3_exp, transform_points
from dense_descriptors_ros.slam.bundle_adjustment import (
    BundleAdjustmentProblem,
    optimize_pose,
    solve_bundle_adjustment,
    stereo_residuals,
)

CAMERA = StereoCamera(fx=300.0, fy=300.0, cx=159.5, cy=119.5, baseline=0.12, width=320, height=240)


def _synthetic_problem(seed: int, n_poses: int = 6, n_points: int = 300, noise_px: float = 0.0):
    rng = np.random.default_rng(seed)
    points = np.stack([rng.uniform(-3, 3, n_points), rng.uniform(-2, 2, n_points), rng.uniform(4, 12, n_points)], 1)
    T_world_cam = [se3_exp(np.array([0.15 * k, 0.02 * k, 0.1 * k, 0.0, 0.03 * k, 0.0])) for k in range(n_poses)]
    poses = invert_pose(np.array(T_world_cam))
    cam_idx, pt_idx, meas, stereo = [], [], [], []
    for k in range(n_poses):
        pc = np.array([transform_points(poses[k], p[None])[0] for p in points])
        proj = CAMERA.project(pc)
        ok = CAMERA.in_image(proj[:, :2]) & (pc[:, 2] > 0)
        for i in np.nonzero(ok)[0]:
            cam_idx.append(k)
            pt_idx.append(i)
            meas.append(proj[i] + rng.normal(scale=noise_px, size=3))
            stereo.append(i % 5 != 0)  # a fifth of the observations are mono
    return (poses, points, np.array(cam_idx), np.array(pt_idx), np.array(meas), np.array(stereo))


def _perturbed(poses, points, seed):
    rng = np.random.default_rng(seed)
    noisy_poses = poses.copy()
    for k in range(1, len(poses)):
        noisy_poses[k] = se3_exp(np.concatenate([rng.normal(0, 0.05, 3), rng.normal(0, 0.01, 3)])) @ poses[k]
    return noisy_poses, points + rng.normal(0, 0.1, points.shape)


def _scipy_reference(problem: BundleAdjustmentProblem) -> tuple[np.ndarray, np.ndarray]:
    """The same problem solved by scipy least_squares (trf, sparse Jacobian by finite differences)."""
    free = np.nonzero(~problem.fixed_poses)[0]
    K, P = len(free), len(problem.points)
    slot = np.full(len(problem.poses), -1)
    slot[free] = np.arange(K)

    def unpack(x):
        poses = problem.poses.copy()
        poses[free] = se3_exp(x[: 6 * K].reshape(K, 6)) @ problem.poses[free]
        return poses, x[6 * K :].reshape(P, 3)

    def fun(x):
        poses, points = unpack(x)
        pc = np.einsum("mij,mj->mi", poses[problem.camera_index, :3, :3], points[problem.point_index])
        pc += poses[problem.camera_index, :3, 3]
        return stereo_residuals(CAMERA, pc, problem.measurements, problem.stereo).ravel()

    M = len(problem.camera_index)
    sparsity = sp.lil_matrix((3 * M, 6 * K + 3 * P), dtype=int)
    for i, (c, p) in enumerate(zip(problem.camera_index, problem.point_index, strict=True)):
        if slot[c] >= 0:
            sparsity[3 * i : 3 * i + 3, 6 * slot[c] : 6 * slot[c] + 6] = 1
        sparsity[3 * i : 3 * i + 3, 6 * K + 3 * p : 6 * K + 3 * p + 3] = 1
    x0 = np.concatenate([np.zeros(6 * K), problem.points.ravel()])
    res = least_squares(fun, x0, jac_sparsity=sparsity, method="trf", x_scale="jac", xtol=1e-10, ftol=1e-10)
    return unpack(res.x)


def test_bundle_adjustment_converges_to_ground_truth_and_agrees_with_scipy():
    poses, points, cam_idx, pt_idx, meas, stereo = _synthetic_problem(seed=2, n_poses=5, n_points=120, noise_px=0.3)
    noisy_poses, noisy_points = _perturbed(poses, points, seed=3)
    fixed = np.zeros(len(poses), bool)
    fixed[0] = True
    problem = BundleAdjustmentProblem(noisy_poses, noisy_points, cam_idx, pt_idx, meas, stereo, fixed)
    result = solve_bundle_adjustment(CAMERA, problem, iterations=30, huber_delta=1e6)  # plain least squares
    assert result.final_cost < 0.01 * result.initial_cost
    centre_err = np.linalg.norm(invert_pose(result.poses)[:, :3, 3] - invert_pose(poses)[:, :3, 3], axis=1)
    assert centre_err.max() < 0.01  # metres, from about 0.09 m of initial error
    ref_poses, ref_points = _scipy_reference(problem)
    assert np.abs(invert_pose(result.poses)[:, :3, 3] - invert_pose(ref_poses)[:, :3, 3]).max() < 1e-4
    assert np.abs(result.points - ref_points).max() < 1e-3


def test_bundle_adjustment_is_robust_to_outliers():
    poses, points, cam_idx, pt_idx, meas, stereo = _synthetic_problem(seed=4, noise_px=0.2)
    meas = meas.copy()
    bad = np.random.default_rng(5).choice(len(meas), len(meas) // 20, replace=False)
    meas[bad] += 25.0  # 5% gross outliers
    noisy_poses, noisy_points = _perturbed(poses, points, seed=6)
    fixed = np.zeros(len(poses), bool)
    fixed[0] = True
    problem = BundleAdjustmentProblem(noisy_poses, noisy_points, cam_idx, pt_idx, meas, stereo, fixed)
    result = solve_bundle_adjustment(CAMERA, problem, iterations=30, outlier_chi2=7.815)
    centre_err = np.linalg.norm(invert_pose(result.poses)[:, :3, 3] - invert_pose(poses)[:, :3, 3], axis=1)
    assert centre_err.max() < 0.02
    assert np.median(result.chi2[bad]) > 100.0  # the outliers stand out for culling


def test_pose_only_optimisation_rejects_outliers():
    poses, points, cam_idx, pt_idx, meas, stereo = _synthetic_problem(seed=7, noise_px=0.3)
    sel = cam_idx == 3
    obs_pts, obs_meas, obs_stereo = points[pt_idx[sel]], meas[sel].copy(), stereo[sel]
    bad = np.arange(0, len(obs_meas), 7)
    obs_meas[bad, :2] += 40.0
    start = se3_exp(np.array([0.1, -0.05, 0.08, 0.02, -0.03, 0.01])) @ poses[3]
    T, inlier = optimize_pose(CAMERA, start, obs_pts, obs_meas, obs_stereo)
    assert np.linalg.norm(invert_pose(T)[:3, 3] - invert_pose(poses[3])[:3, 3]) < 0.01
    assert not inlier[bad].any()
    assert inlier.mean() > 0.8
