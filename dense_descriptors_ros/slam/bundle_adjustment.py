"""Windowed stereo bundle adjustment on GTSAM, with marginal covariances of the adjusted poses.

Measurements are rectified stereo triples (uL, v, uR): a keypoint with a right match becomes a
``GenericStereoFactor3D``, one without a ``GenericProjectionFactorCal3_S2`` on (uL, v). Residuals are in pixels with
unit sigma under a Huber kernel of ``sqrt(chi2 quantile)`` (7.815 for stereo with 3 dof). Fixed keyframes are held
by tight priors (GTSAM's ``NonlinearEquality`` is several times slower here). Levenberg-Marquardt eliminates the
points first and runs one iteration at a time so ``should_stop()`` can end it early (S-PTAM's abort when a new
keyframe arrives).

GTSAM holds the GIL while it optimises, so local mapping calls this in a worker process (solver_process.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.se3 import invert_pose
from dense_descriptors_ros.slam.gtsam_support import (
    covariance_from_gtsam,
    mono_calibration,
    require_gtsam,
    stereo_calibration,
)
from dense_descriptors_ros.slam.pose_optimisation import CHI2_STEREO_95, stereo_residuals

FIXED_POSE_SIGMA = 1e-6  # metres and radians of the priors that hold fixed keyframes


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

    def subset(self, keep: np.ndarray, poses: np.ndarray, points: np.ndarray) -> BundleAdjustmentProblem:
        """The observations in ``keep``, starting from ``poses`` and ``points``."""
        return BundleAdjustmentProblem(
            poses,
            points,
            self.camera_index[keep],
            self.point_index[keep],
            self.measurements[keep],
            self.stereo[keep],
            self.fixed_poses,
        )


@dataclass
class BundleAdjustmentResult:
    poses: np.ndarray  # (K, 4, 4) T_cam_world
    points: np.ndarray
    chi2: np.ndarray  # per observation, at the solution
    iterations: int
    initial_cost: float
    final_cost: float
    # (K, 6, 6) marginal covariance of each free pose as a right perturbation of T_world_cam, (translation,
    # rotation) order; NaN for fixed poses; None unless asked for or when the system is (near) singular.
    covariances: np.ndarray | None = None


def observation_chi2(camera: StereoCamera, problem: BundleAdjustmentProblem, poses: np.ndarray, points: np.ndarray):
    """(M,) squared pixel residual of every observation at ``poses`` (T_cam_world) and ``points``."""
    R = poses[problem.camera_index, :3, :3]
    pc = np.einsum("mij,mj->mi", R, points[problem.point_index]) + poses[problem.camera_index, :3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = stereo_residuals(camera, pc, problem.measurements, problem.stereo)
    chi2 = np.einsum("mi,mi->m", r, r)
    return np.where(np.isfinite(chi2) & (pc[:, 2] > 0), chi2, np.inf)


def solve_bundle_adjustment(
    camera: StereoCamera,
    problem: BundleAdjustmentProblem,
    iterations: int = 10,
    huber_delta: float | None = float(np.sqrt(CHI2_STEREO_95)),
    outlier_chi2: float | None = None,
    should_stop: Callable[[], bool] | None = None,
    marginals: bool = False,
) -> BundleAdjustmentResult:
    """Levenberg-Marquardt on a stereo BA problem (``huber_delta`` None: plain least squares).

    With ``outlier_chi2`` the solve runs twice, as in S-PTAM / ORB-SLAM local BA: after the robust pass the
    observations whose chi2 exceeds it are left out and the rest are optimised again (a point that lost every
    observation keeps its first-pass position). ``chi2`` in the result covers every observation of the problem.
    ``marginals`` adds the marginal covariance of every free pose.
    """
    if (~problem.fixed_poses).sum() == 0 and len(problem.points) == 0:
        raise ValueError("bundle adjustment problem has nothing to optimise")
    window = _FactorGraph(camera, problem, problem.poses, problem.points, huber_delta)
    initial_cost, cost, done = window.optimise(iterations, should_stop)
    poses, points = window.poses, window.points
    if outlier_chi2 is not None:
        inlier = observation_chi2(camera, problem, poses, points) <= outlier_chi2
        if not inlier.all() and inlier.sum() >= 3:
            window = _FactorGraph(camera, problem.subset(inlier, poses, points), poses, points, huber_delta)
            _, cost, more = window.optimise(iterations, should_stop)
            poses, points, done = window.poses, window.points, done + more
    chi2 = observation_chi2(camera, problem, poses, points)
    covariances = window.covariances(problem.fixed_poses) if marginals else None
    return BundleAdjustmentResult(poses, points, chi2, done, initial_cost, cost, covariances)


class _FactorGraph:
    """The GTSAM factor graph and values of one BA problem; ``poses`` / ``points`` hold the current estimate."""

    def __init__(
        self,
        camera: StereoCamera,
        problem: BundleAdjustmentProblem,
        poses: np.ndarray,
        points: np.ndarray,
        huber_delta: float | None,
    ) -> None:
        gtsam = self.gtsam = require_gtsam()
        X = gtsam.symbol_shorthand.X
        self.graph = graph = gtsam.NonlinearFactorGraph()
        # The marginals leave out points without a stereo observation: one seen once in mono has no depth (a
        # singular system), a few mono views have little parallax; their information on the poses is small.
        self.marginal_graph = gtsam.NonlinearFactorGraph()
        has_stereo = np.zeros(len(points), bool)
        has_stereo[problem.point_index[problem.stereo]] = True
        stereo_noise = gtsam.noiseModel.Isotropic.Sigma(3, 1.0)
        mono_noise = gtsam.noiseModel.Isotropic.Sigma(2, 1.0)
        if huber_delta is not None:
            huber = gtsam.noiseModel.mEstimator.Huber.Create(huber_delta)
            stereo_noise = gtsam.noiseModel.Robust.Create(huber, stereo_noise)
            mono_noise = gtsam.noiseModel.Robust.Create(huber, mono_noise)
        K_stereo, K_mono = stereo_calibration(camera), mono_calibration(camera)
        StereoFactor, MonoFactor, StereoPoint2 = (
            gtsam.GenericStereoFactor3D,
            gtsam.GenericProjectionFactorCal3_S2,
            gtsam.StereoPoint2,
        )
        for cam, pt, (u, v, ur), is_stereo, in_marginals in zip(
            _symbols(gtsam, "x", problem.camera_index),
            _symbols(gtsam, "l", problem.point_index),
            problem.measurements.tolist(),
            problem.stereo.tolist(),
            has_stereo[problem.point_index].tolist(),
            strict=True,
        ):
            if is_stereo:
                factor = StereoFactor(StereoPoint2(u, ur, v), stereo_noise, cam, pt, K_stereo)
            else:
                factor = MonoFactor(np.array([u, v]), mono_noise, cam, pt, K_mono)
            graph.add(factor)
            if in_marginals:
                self.marginal_graph.add(factor)
        self.values = gtsam.Values()
        fixed_noise = gtsam.noiseModel.Isotropic.Sigma(6, FIXED_POSE_SIGMA)
        for k, T in enumerate(invert_pose(poses)):
            pose = gtsam.Pose3(T)
            self.values.insert(X(k), pose)
            if problem.fixed_poses[k]:
                graph.add(gtsam.PriorFactorPose3(X(k), pose, fixed_noise))
                self.marginal_graph.add(gtsam.PriorFactorPose3(X(k), pose, fixed_noise))
        self.observed = np.zeros(len(points), bool)
        self.observed[problem.point_index] = True
        observed = np.nonzero(self.observed)[0]
        for key, point in zip(_symbols(gtsam, "l", observed), points[observed], strict=True):
            self.values.insert(key, point)
        self.poses, self.points = poses.copy(), points.copy()

    def optimise(self, iterations: int, should_stop: Callable[[], bool] | None) -> tuple[float, float, int]:
        """Levenberg-Marquardt, one iteration at a time; returns (initial cost, final cost, iterations)."""
        gtsam = self.gtsam
        params = gtsam.LevenbergMarquardtParams()
        params.setMaxIterations(max(iterations, 1))
        # Points first, then poses: the Schur-complement order of BA (about a third faster than COLAMD here).
        ordering = gtsam.Ordering()
        for key in _symbols(gtsam, "l", np.nonzero(self.observed)[0]) + _symbols(
            gtsam, "x", np.arange(len(self.poses))
        ):
            ordering.push_back(key)
        params.setOrdering(ordering)
        optimizer = gtsam.LevenbergMarquardtOptimizer(self.graph, self.values, params)
        initial_cost = cost = optimizer.error()
        done = 0
        # At least one iteration: an abort that arrives as the solve starts should not waste it.
        while done < iterations and not (done > 0 and should_stop is not None and should_stop()):
            optimizer.iterate()
            done += 1
            converged = cost - optimizer.error() <= params.getRelativeErrorTol() * cost
            cost = optimizer.error()
            if converged:
                break
        self.values = optimizer.values()
        X = gtsam.symbol_shorthand.X
        self.poses = np.array([invert_pose(self.values.atPose3(X(k)).matrix()) for k in range(len(self.poses))])
        self.points[self.observed] = gtsam.utilities.extractPoint3(self.values).reshape(-1, 3)
        return initial_cost, cost, done

    def covariances(self, fixed: np.ndarray) -> np.ndarray | None:
        """(K, 6, 6) marginal covariances of the free poses (NaN for fixed ones), see BundleAdjustmentResult; None
        when GTSAM finds the system (near) singular, e.g. a keyframe seen only through mono points."""
        X = self.gtsam.symbol_shorthand.X
        out = np.full((len(self.poses), 6, 6), np.nan)
        try:
            marginals = self.gtsam.Marginals(self.marginal_graph, self.values)
            for k in np.nonzero(~fixed)[0].tolist():
                out[k] = covariance_from_gtsam(marginals.marginalCovariance(X(k)))
        except (RuntimeError, IndexError):  # an indeterminate system, or a pose the marginal graph lacks
            return None
        return out


def _symbols(gtsam: ModuleType, char: str, index: np.ndarray) -> list[int]:
    """GTSAM keys Symbol(char, i) of an index array at once (a key is the character's code << 56 | i), instead of
    one ``symbol_shorthand`` call per factor."""
    return (np.uint64(gtsam.symbol(char, 0)) + np.asarray(index, dtype=np.uint64)).tolist()
