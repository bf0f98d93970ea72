"""Solver: the GTSAM back-end (window BA, pose graph) inline or in a worker process.

GTSAM holds the GIL while it optimises: a 0.19 s local BA kept a Python thread of the same process from running for
0.17 s. So the mapping thread hands its problems to a worker process and waits for the answer without the GIL, and
tracking keeps its rate. The worker is ``python -m dense_descriptors_ros.slam.solver_process`` (not a
multiprocessing spawn, which would re-import the caller's main script); requests, results and exceptions travel as
pickles over a socket pair (a BA window is a few hundred KB). One worker serves the whole process and runs one
request at a time; :meth:`Solver.abort` sends a message that the running BA sees between Levenberg-Marquardt
iterations and stops on (S-PTAM's abort when a new keyframe arrives). ``in_process=True`` (synchronous mapping) calls
the same functions directly: deterministic.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import threading
from multiprocessing.connection import Connection, Pipe
from typing import Any

import numpy as np

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.slam.bundle_adjustment import (
    BundleAdjustmentProblem,
    BundleAdjustmentResult,
    solve_bundle_adjustment,
)
from dense_descriptors_ros.slam.gtsam_support import require_gtsam
from dense_descriptors_ros.slam.pose_graph import PoseGraphEdge, optimize_pose_graph

_ABORT = "abort"


class SolverProcessError(RuntimeError):
    """The solver's worker process ended."""


class _Worker:
    """The worker process and the socket to it: one request at a time, aborts from any thread."""

    def __init__(self) -> None:
        ours, theirs = Pipe(duplex=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(theirs.fileno())], pass_fds=[theirs.fileno()], env=env
        )
        theirs.close()
        self.conn = ours
        self._request_lock = threading.Lock()
        self._send_lock = threading.Lock()  # requests (mapping threads) and aborts (tracking threads)

    def alive(self) -> bool:
        return self.process.poll() is None and not self.conn.closed

    def call(self, kind: str, *args: Any) -> Any:
        with self._request_lock:
            try:
                with self._send_lock:
                    self.conn.send((kind, args))
                status, value = self.conn.recv()
            except (EOFError, OSError) as exc:
                raise SolverProcessError(f"the GTSAM solver process ended ({exc})") from exc
        if status == "error":
            raise value
        return value

    def abort(self) -> None:
        with self._send_lock, contextlib.suppress(OSError):
            self.conn.send((_ABORT, ()))

    def close(self) -> None:
        with self._send_lock:
            self.conn.close()  # the worker reads EOF and exits
        try:
            self.process.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_shared: _Worker | None = None
_shared_lock = threading.Lock()


def shared_worker() -> _Worker:
    """The process's solver worker, started on first use (and again if it died); closed at exit.

    One worker serves every SLAM of a process: it is started once (about half a second, importing GTSAM), early
    (StereoSlam's constructor), so the first keyframe's BA does not wait for it.
    """
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.alive():
            _shared = _Worker()
            atexit.register(_shared.close)
        return _shared


class Solver:
    """Runs bundle adjustments and pose graphs, in the shared worker process unless ``in_process``."""

    def __init__(self, in_process: bool) -> None:
        self._in_process = in_process

    def bundle_adjust(
        self,
        camera: StereoCamera,
        problem: BundleAdjustmentProblem,
        iterations: int,
        outlier_chi2: float,
        marginals: bool,
    ) -> BundleAdjustmentResult:
        if self._in_process:
            return solve_bundle_adjustment(
                camera, problem, iterations=iterations, outlier_chi2=outlier_chi2, marginals=marginals
            )
        return shared_worker().call("bundle_adjust", camera, problem, iterations, outlier_chi2, marginals)

    def pose_graph(self, poses: np.ndarray, edges: list[PoseGraphEdge], fixed: int) -> np.ndarray:
        if self._in_process:
            return optimize_pose_graph(poses, edges, fixed)
        return shared_worker().call("pose_graph", poses, edges, fixed)

    def abort(self) -> None:
        """Ask a running bundle adjustment to stop after its current iteration (no-op inline)."""
        if not self._in_process:
            shared_worker().abort()


def _warm_up() -> None:
    """Import GTSAM and solve a tiny problem: GTSAM's first solve in a process costs about 0.2 s more than later
    ones, which the first keyframe should not pay."""
    require_gtsam()
    camera = StereoCamera(100.0, 100.0, 50.0, 50.0, 0.1, 100, 100)
    points = np.array([[x, y, 3.0] for x in (-0.5, 0.0, 0.5) for y in (-0.5, 0.5)])
    poses = np.tile(np.eye(4), (2, 1, 1))
    poses[1, 0, 3] = -0.1
    cam = np.repeat([0, 1], len(points))
    pt = np.tile(np.arange(len(points)), 2)
    pc = points[pt] + poses[cam, :3, 3]
    problem = BundleAdjustmentProblem(
        poses, points, cam, pt, camera.project(pc), np.ones(len(cam), bool), np.array([True, False])
    )
    solve_bundle_adjustment(camera, problem, iterations=2, outlier_chi2=7.815, marginals=True)


def _serve(conn: Connection) -> None:
    """The worker's loop: answer requests until the connection closes."""
    _warm_up()

    def bundle_adjust(
        camera: StereoCamera, problem: BundleAdjustmentProblem, iterations: int, outlier_chi2: float, marginals: bool
    ) -> BundleAdjustmentResult:
        return solve_bundle_adjustment(
            camera,
            problem,
            iterations=iterations,
            outlier_chi2=outlier_chi2,
            should_stop=conn.poll,  # only an abort can arrive while a request runs
            marginals=marginals,
        )

    handlers = {"bundle_adjust": bundle_adjust, "pose_graph": optimize_pose_graph}
    while True:
        try:
            kind, args = conn.recv()
        except (EOFError, OSError):
            return
        if kind == _ABORT:  # for a solve that has finished (or stopped on it) already
            continue
        try:
            answer = ("ok", handlers[kind](*args))
        except Exception as exc:  # the caller re-raises it
            answer = ("error", exc)
        conn.send(answer)


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
