"""The GTSAM window bundle adjustment (exact on noise-free data, robust to outliers, marginal covariances that equal
the inverse Hessian) and the numpy pose-only refinement of tracking."""

import numpy as np
import pytest

from dense_descriptors_ros.geometry.camera import StereoCamera, stereo_projection_jacobian
from dense_descriptors_ros.geometry.se3 import invert_pose, point_pose_jacobian, se3_exp, transform_points
from dense_descriptors_ros.slam.bundle_adjustment import BundleAdjustmentProblem, solve_bundle_adjustment
from dense_descriptors_ros.slam.pose_optimisation import optimize_pose

CAMERA = StereoCamera(fx=300.0, fy=300.0, cx=159.5, cy=119.5, baseline=0.12, width=320, height=240)


def _synthetic_problem(seed: int, n_poses: int = 6, n_points: int = 300, noise_px: float = 0.0):
    rng = np.random.default_rng(seed)
    points = np.stack([rng.uniform(-3, 3, n_points), rng.uniform(-2, 2, n_points), rng.uniform(4, 12, n_points)], 1)
    T_world_cam = [se3_exp(np.array([0.15 * k, 0.02 * k, 0.1 * k, 0.0, 0.03 * k, 0.0])) for k in range(n_poses)]
    poses = invert_pose(np.array(T_world_cam))
    cam_idx, pt_idx, meas, stereo = [], [], [], []
    for k in range(n_poses):
        pc = transform_points(poses[k], points)
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


def _centre_errors(poses, truth):
    return np.linalg.norm(invert_pose(poses)[:, :3, 3] - invert_pose(truth)[:, :3, 3], axis=1)


def _first_fixed(n):
    fixed = np.zeros(n, bool)
    fixed[0] = True
    return fixed


def test_noise_free_bundle_adjustment_recovers_the_truth():
    poses, points, cam_idx, pt_idx, meas, stereo = _synthetic_problem(seed=2, n_poses=5, n_points=120)
    noisy_poses, noisy_points = _perturbed(poses, points, seed=3)
    problem = BundleAdjustmentProblem(noisy_poses, noisy_points, cam_idx, pt_idx, meas, stereo, _first_fixed(5))
    assert _centre_errors(noisy_poses, poses).max() > 0.05
    result = solve_bundle_adjustment(CAMERA, problem, iterations=50)
    assert result.final_cost < 1e-12 * result.initial_cost
    np.testing.assert_allclose(result.poses, poses, atol=1e-6)
    seen = np.unique(pt_idx)
    np.testing.assert_allclose(result.points[seen], points[seen], atol=1e-6)
    unseen = np.setdiff1d(np.arange(len(points)), seen)
    np.testing.assert_array_equal(result.points[unseen], noisy_points[unseen])  # nothing moves them
    assert result.chi2.max() < 1e-10


def test_outliers_are_down_weighted_by_the_robust_kernel():
    poses, points, cam_idx, pt_idx, meas, stereo = _synthetic_problem(seed=4, noise_px=0.2)
    meas = meas.copy()
    bad = np.random.default_rng(5).choice(len(meas), len(meas) // 20, replace=False)
    meas[bad] += 25.0  # 5% gross outliers
    noisy_poses, noisy_points = _perturbed(poses, points, seed=6)
    problem = BundleAdjustmentProblem(noisy_poses, noisy_points, cam_idx, pt_idx, meas, stereo, _first_fixed(6))
    plain = solve_bundle_adjustment(CAMERA, problem, iterations=30, huber_delta=None)
    robust = solve_bundle_adjustment(CAMERA, problem, iterations=30)
    robust_err, plain_err = _centre_errors(robust.poses, poses).max(), _centre_errors(plain.poses, poses).max()
    assert robust_err < 0.1 * plain_err, (robust_err, plain_err)  # about 0.05 m vs 0.66 m
    assert np.median(robust.chi2[bad]) > 100.0  # the outliers stand out for culling
    # Leaving the outliers out and solving again (local mapping does) comes closer still.
    second = solve_bundle_adjustment(CAMERA, problem, iterations=30, outlier_chi2=7.815)
    assert _centre_errors(second.poses, poses).max() < min(0.02, robust_err)
    good = np.setdiff1d(np.arange(len(meas)), bad)
    assert np.median(second.chi2[good]) < 1.0


def test_marginal_covariances_are_the_inverse_hessian():
    """Noise-free, the marginal covariance of a free pose is the pose block of (J^T J)^-1 with the first pose held."""
    poses, points, cam_idx, pt_idx, meas, stereo = _synthetic_problem(seed=8, n_poses=3, n_points=40)
    seen, pt_idx = np.unique(pt_idx, return_inverse=True)  # every point observed, every observation stereo
    points, stereo = points[seen], np.ones(len(cam_idx), bool)
    problem = BundleAdjustmentProblem(poses, points, cam_idx, pt_idx, meas, stereo, _first_fixed(3))
    result = solve_bundle_adjustment(CAMERA, problem, iterations=1, marginals=True)
    assert np.isnan(result.covariances[0]).all()
    # Jacobian of the residuals w.r.t. left twists of the free T_cam_world and the points (unit pixel sigma).
    n_free, n_pts = 2, len(points)
    J = np.zeros((3 * len(cam_idx), 6 * n_free + 3 * n_pts))
    pc = np.einsum("mij,mj->mi", poses[cam_idx, :3, :3], points[pt_idx]) + poses[cam_idx, :3, 3]
    Jp = stereo_projection_jacobian(CAMERA, pc)
    Jp[~stereo, 2, :] = 0.0
    for m, (k, p) in enumerate(zip(cam_idx, pt_idx, strict=True)):
        if k > 0:
            J[3 * m : 3 * m + 3, 6 * (k - 1) : 6 * k] = Jp[m] @ point_pose_jacobian(pc[m : m + 1])[0]
        J[3 * m : 3 * m + 3, 6 * n_free + 3 * p : 6 * n_free + 3 * p + 3] = Jp[m] @ poses[k, :3, :3]
    covariance = np.linalg.inv(J.T @ J)
    for k in (1, 2):
        expected = covariance[6 * (k - 1) : 6 * k, 6 * (k - 1) : 6 * k]
        np.testing.assert_allclose(result.covariances[k], expected, rtol=1e-3, atol=1e-12)


def test_marginals_of_a_singular_window_are_left_out():
    """Without stereo observations the marginal graph cannot fix the free poses: no covariances, the BA still runs."""
    poses, points, cam_idx, pt_idx, meas, _ = _synthetic_problem(seed=9, n_poses=3, n_points=40)
    mono = np.zeros(len(cam_idx), bool)
    problem = BundleAdjustmentProblem(poses, points, cam_idx, pt_idx, meas, mono, _first_fixed(3))
    result = solve_bundle_adjustment(CAMERA, problem, iterations=2, marginals=True)
    assert result.covariances is None
    np.testing.assert_allclose(result.poses, poses, atol=1e-6)


def test_a_problem_with_nothing_to_optimise_is_rejected():
    empty = np.zeros(0, int)
    problem = BundleAdjustmentProblem(
        np.eye(4)[None], np.zeros((0, 3)), empty, empty, np.zeros((0, 3)), np.zeros(0, bool), np.ones(1, bool)
    )
    with pytest.raises(ValueError, match="nothing to optimise"):
        solve_bundle_adjustment(CAMERA, problem)


def test_pose_only_optimisation_rejects_outliers():
    poses, points, cam_idx, pt_idx, meas, stereo = _synthetic_problem(seed=7, noise_px=0.3)
    sel = cam_idx == 3
    obs_pts, obs_meas, obs_stereo = points[pt_idx[sel]], meas[sel].copy(), stereo[sel]
    bad = np.arange(0, len(obs_meas), 7)
    obs_meas[bad, :2] += 40.0
    start = se3_exp(np.array([0.1, -0.05, 0.08, 0.02, -0.03, 0.01])) @ poses[3]
    estimate = optimize_pose(CAMERA, start, obs_pts, obs_meas, obs_stereo)
    assert np.linalg.norm(invert_pose(estimate.T_cam_world)[:3, 3] - invert_pose(poses[3])[:3, 3]) < 0.01
    assert not estimate.inliers[bad].any()
    assert estimate.inliers.mean() > 0.8
    # The information matrix is positive definite; more observations give a smaller pose covariance.
    assert np.linalg.eigvalsh(estimate.information).min() > 0
    half = optimize_pose(CAMERA, start, obs_pts[::2], obs_meas[::2], obs_stereo[::2])
    assert np.trace(np.linalg.inv(half.information)) > np.trace(np.linalg.inv(estimate.information))
