"""GTSAM runs in a worker process: the same answers as inline, errors come back to the caller, the caller's GIL stays
free while it solves, and a missing GTSAM is a clear start-up error."""

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.se3 import invert_pose, se3_exp, transform_points
from dense_descriptors_ros.slam.bundle_adjustment import BundleAdjustmentProblem
from dense_descriptors_ros.slam.gtsam_support import GTSAM_REQUIREMENT, GtsamMissingError
from dense_descriptors_ros.slam.solver_process import Solver
from dense_descriptors_ros.slam.stereo_slam import StereoSlam

CAMERA = StereoCamera(fx=300.0, fy=300.0, cx=159.5, cy=119.5, baseline=0.12, width=320, height=240)


def _problem(n_poses: int, n_points: int, seed: int = 0) -> BundleAdjustmentProblem:
    rng = np.random.default_rng(seed)
    points = np.stack([rng.uniform(-3, 3, n_points), rng.uniform(-2, 2, n_points), rng.uniform(4, 12, n_points)], 1)
    poses = invert_pose(np.array([se3_exp(np.array([0.1 * k, 0, 0.05 * k, 0, 0.02 * k, 0])) for k in range(n_poses)]))
    cam = np.repeat(np.arange(n_poses), n_points)
    pt = np.tile(np.arange(n_points), n_poses)
    pc = np.concatenate([transform_points(T, points) for T in poses])
    fixed = np.zeros(n_poses, bool)
    fixed[0] = True
    start = poses.copy()
    start[1:] = se3_exp(np.array([0.02, -0.01, 0.03, 0.0, 0.01, 0.0])) @ poses[1:]
    measurements = CAMERA.project(pc) + rng.normal(0, 0.3, (len(cam), 3))
    return BundleAdjustmentProblem(start, points + 0.05, cam, pt, measurements, np.ones(len(cam), bool), fixed)


def test_the_worker_process_solves_what_the_inline_solver_solves():
    problem = _problem(4, 150)
    inline = Solver(in_process=True).bundle_adjust(CAMERA, problem, 10, 7.815, True)
    worker = Solver(in_process=False).bundle_adjust(CAMERA, problem, 10, 7.815, True)
    np.testing.assert_allclose(worker.poses, inline.poses, atol=1e-12)
    np.testing.assert_allclose(worker.points, inline.points, atol=1e-12)
    np.testing.assert_allclose(worker.covariances[1:], inline.covariances[1:], rtol=1e-9)


def test_worker_errors_are_raised_in_the_caller():
    empty = np.zeros(0, int)
    nothing = BundleAdjustmentProblem(
        np.eye(4)[None], np.zeros((0, 3)), empty, empty, np.zeros((0, 3)), np.zeros(0, bool), np.ones(1, bool)
    )
    with pytest.raises(ValueError, match="nothing to optimise"):
        Solver(in_process=False).bundle_adjust(CAMERA, nothing, 5, 7.815, False)
    # The worker carries on after an error.
    assert Solver(in_process=False).pose_graph(np.tile(np.eye(4), (2, 1, 1)), [], 0).shape == (2, 4, 4)


def _longest_gap_while(solve) -> tuple[float, float]:
    """(longest pause of a 1 ms ticker thread, solve time) in seconds while ``solve()`` runs."""
    gaps, done = [], threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = threading.Thread(target=tick)
    ticker.start()
    time.sleep(0.05)
    start = time.perf_counter()
    solve()
    elapsed = time.perf_counter() - start
    done.set()
    ticker.join()
    return max(gaps), elapsed


def test_the_caller_keeps_the_gil_while_the_worker_solves():
    """GTSAM holds the GIL: inline, another thread of the process stops for the whole solve; with the worker it
    keeps running."""
    problem = _problem(10, 1500)
    worker = Solver(in_process=False)
    worker.bundle_adjust(CAMERA, problem, 1, 7.815, False)  # the worker is up
    inline_gap, inline_time = _longest_gap_while(
        lambda: Solver(in_process=True).bundle_adjust(CAMERA, problem, 10, 7.815, False)
    )
    worker_gap, _ = _longest_gap_while(lambda: worker.bundle_adjust(CAMERA, problem, 10, 7.815, False))
    assert inline_gap > 0.03, (inline_gap, inline_time)  # one LM iteration holds the GIL throughout
    assert worker_gap < 0.5 * inline_gap, (worker_gap, inline_gap)


def test_a_missing_gtsam_is_a_clear_start_up_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gtsam", None)  # import gtsam now raises ImportError
    with pytest.raises(GtsamMissingError, match=f"pip install {GTSAM_REQUIREMENT}"):
        StereoSlam(CAMERA)


def test_requirements_pin_the_gtsam_the_error_names():
    requirements = (Path(__file__).parents[2] / "requirements.txt").read_text().split()
    assert GTSAM_REQUIREMENT in requirements
