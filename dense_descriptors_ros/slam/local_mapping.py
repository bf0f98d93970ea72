"""Local mapping: windowed bundle adjustment, map culling and loop closing, in a thread that never stalls tracking.

Keyframes (with their new points, triangulated on the tracking thread as S-PTAM does) are queued here. The worker
takes every queued keyframe, builds a BA window (the newest keyframe and its most covisible keyframes are adjusted;
the other keyframes that see the window's points are held fixed), copies the window out under the map lock, solves
it on GTSAM in the solver's worker process (GTSAM holds the GIL), writes poses, points and pose covariances back
under the lock, removes outlier observations and culls bad points (S-PTAM ``MapPoint::IsBad``) and redundant
keyframes (ORB-SLAM: most of their points are seen by at least three other keyframes). Then it looks for a loop at
each new keyframe; a solved loop waits in :attr:`LocalMapper.loop_corrections` until the tracking thread applies it
between two frames. ``synchronous=True`` runs the same work inline, for deterministic tests and offline runs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.se3 import invert_pose
from dense_descriptors_ros.slam.bundle_adjustment import BundleAdjustmentProblem
from dense_descriptors_ros.slam.loop_closure import LoopCloser, LoopCorrection
from dense_descriptors_ros.slam.map import SlamMap
from dense_descriptors_ros.slam.pose_optimisation import CHI2_STEREO_95
from dense_descriptors_ros.slam.solver_process import Solver

log = logging.getLogger(__name__)


@dataclass
class LocalMappingConfig:
    """Windowed bundle adjustment and culling."""

    enabled: bool = field(default=True, metadata={"help": "run local bundle adjustment on new keyframes"})
    window_keyframes: int = field(default=8, metadata={"help": "keyframes adjusted per BA", "range": (2, 50)})
    fixed_keyframes: int = field(default=8, metadata={"help": "most fixed keyframes in a BA", "range": (1, 100)})
    iterations: int = field(default=8, metadata={"help": "LM iterations per BA pass", "range": (1, 100)})
    synchronous: bool = field(
        default=False,
        metadata={"help": "run BA and loop closing inline (deterministic) instead of in the mapping thread"},
    )
    cull_min_found_ratio: float = field(
        default=0.25,
        metadata={"help": "cull points found in less than this share of predicted views", "range": (0.0, 1.0)},
    )
    cull_keyframes: bool = field(
        default=True, metadata={"help": "remove keyframes whose points other keyframes see (bounded map)"}
    )
    redundant_ratio: float = field(
        default=0.9,
        metadata={
            "help": "a keyframe is redundant when this share of its points is seen by >= 3 others",
            "range": (0.0, 1.0),
        },
    )


REDUNDANT_OBSERVERS = 3  # other keyframes that must see a point for it to count as redundant (ORB-SLAM)


@dataclass
class MappingStats:
    bundle_adjustments: int = 0
    ba_seconds: list[float] = field(default_factory=list)
    culled_points: int = 0
    culled_keyframes: int = 0


class LocalMapper:
    """Runs BA, culling and loop detection for queued keyframes, in a daemon thread or inline."""

    def __init__(
        self,
        slam_map: SlamMap,
        camera: StereoCamera,
        config: LocalMappingConfig | None = None,
        loop_closer: LoopCloser | None = None,
    ) -> None:
        self.map = slam_map
        self.camera = camera
        self.config = config or LocalMappingConfig()
        self.loop_closer = loop_closer
        self.stats = MappingStats()
        self.loop_corrections: queue.Queue[LoopCorrection] = queue.Queue()
        self.solver = Solver(in_process=self.config.synchronous)
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._pending = 0  # keyframes submitted and not yet processed, guarded by _done
        self._done = threading.Condition()
        self._thread: threading.Thread | None = None
        if not self.config.synchronous:
            self._thread = threading.Thread(target=self._run, name="slam-local-mapping", daemon=True)
            self._thread.start()

    def submit(self, keyframe_id: int) -> None:
        """Queue a keyframe inserted into the map; returns at once unless synchronous."""
        if self._thread is None:
            self.process([keyframe_id])
            return
        with self._done:
            self._pending += 1
        self.solver.abort()  # a newer keyframe makes the running BA stop early (S-PTAM's abort)
        self._queue.put(keyframe_id)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every queued keyframe is processed; False on timeout."""
        with self._done:
            return self._done.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30.0)
            self._thread = None
        with self._done:  # whatever was still queued is dropped
            self._pending = 0
            self._done.notify_all()

    def _run(self) -> None:
        while True:
            kf = self._queue.get()
            if kf is None:
                return
            batch = [kf]
            while not self._queue.empty():
                nxt = self._queue.get()
                if nxt is None:
                    return
                batch.append(nxt)
            try:
                self.process(batch)
            except Exception:  # the tracker must survive a failed BA; the error is logged with its traceback
                log.exception("local mapping failed")
            with self._done:
                self._pending -= len(batch)
                self._done.notify_all()

    def process(self, keyframe_ids: list[int]) -> None:
        """BA around the newest of ``keyframe_ids``, culling, then loop detection at each of them."""
        with self.map.lock:
            present = [k for k in keyframe_ids if k in self.map.keyframes]
        if not present:
            return
        newest = max(present)
        if self.config.enabled:
            start = time.perf_counter()
            self.bundle_adjust(newest)
            self.stats.ba_seconds.append(time.perf_counter() - start)
            self.stats.bundle_adjustments += 1
            self.cull_points()
            if self.config.cull_keyframes:
                self.cull_keyframes(newest)
        if self.loop_closer is not None:
            for kf in present:
                if not self.loop_corrections.empty():  # one correction at a time: the next sees the map after it
                    break
                found = self.loop_closer.check(kf, self.solver)
                if found is not None:
                    self.loop_corrections.put(found)

    def bundle_adjust(self, keyframe_id: int) -> None:
        cfg = self.config
        with self.map.lock:
            window = [keyframe_id, *self.map.covisible_keyframes(keyframe_id, cfg.window_keyframes - 1)]
            obs_kf, obs_kp, obs_pt = self.map.observations()
            in_window = np.isin(obs_kf, window)
            points = np.unique(obs_pt[in_window])
            if len(points) < 10:
                return
            sel = np.isin(obs_pt, points)
            obs_kf, obs_kp, obs_pt = obs_kf[sel], obs_kp[sel], obs_pt[sel]
            others, counts = np.unique(obs_kf[~np.isin(obs_kf, window)], return_counts=True)
            fixed = [int(k) for k in others[np.argsort(-counts, kind="stable")][: cfg.fixed_keyframes]]
            if not fixed:  # keep the gauge: hold the oldest keyframe of the window
                fixed = [min(window)]
                window = [k for k in window if k != fixed[0]]
            if not window:
                return
            frames = window + fixed
            keep = np.isin(obs_kf, frames)
            obs_kf, obs_kp, obs_pt = obs_kf[keep], obs_kp[keep], obs_pt[keep]
            slot = {k: i for i, k in enumerate(frames)}
            cam_index = np.array([slot[int(k)] for k in obs_kf])
            point_slot = np.searchsorted(points, obs_pt)
            poses = np.array([invert_pose(self.map.keyframes[k].T_world_cam) for k in frames])
            meas = np.zeros((len(obs_kf), 3))
            for k in frames:
                m = obs_kf == k
                kf = self.map.keyframes[k]
                meas[m, :2] = kf.keypoints[obs_kp[m]]
                meas[m, 2] = kf.right_x[obs_kp[m]]
            stereo = np.isfinite(meas[:, 2])
            meas[~stereo, 2] = 0.0
            positions = self.map.positions[points].copy()
            version = self.map.version
        problem = BundleAdjustmentProblem(
            poses, positions, cam_index, point_slot, meas, stereo, np.array([k in fixed for k in frames])
        )
        result = self.solver.bundle_adjust(
            self.camera, problem, iterations=cfg.iterations, outlier_chi2=CHI2_STEREO_95, marginals=True
        )
        with self.map.lock:
            if self.map.version != version:  # a loop closure moved the map meanwhile: drop this result
                return
            for i, k in enumerate(window):
                if k in self.map.keyframes:
                    self.map.keyframes[k].T_world_cam = invert_pose(result.poses[i])
                    if result.covariances is not None:
                        self.map.keyframes[k].covariance = result.covariances[i]
            alive = self.map.alive[points]
            self.map.positions[points[alive]] = result.points[alive]
            outlier = result.chi2 > CHI2_STEREO_95 * 2.0
            self.map.outlier_count[:] += np.bincount(obs_pt[outlier], minlength=self.map.num_points)
            self.map.remove_observations(obs_kf[outlier], obs_kp[outlier])
            self.map.version += 1

    def cull_points(self) -> None:
        """Remove points that lost all observations, or that were predicted visible but rarely found."""
        with self.map.lock:
            alive = self.map.alive_ids()
            n_obs = self.map.observation_counts()[alive]
            visible = self.map.visible_count[alive]
            found = self.map.found_count[alive]
            outliers = self.map.outlier_count[alive]
            bad = (
                (n_obs == 0)
                | ((visible > 20) & (found < self.config.cull_min_found_ratio * visible))
                | ((outliers > 5) & (outliers > n_obs))
            )
            self.map.remove_points(alive[bad])
            self.stats.culled_points += int(bad.sum())

    def cull_keyframes(self, newest: int) -> None:
        """Remove the keyframes around ``newest`` whose points are nearly all seen by >= 3 other keyframes.

        The newest keyframe, the first one (the map's origin) and the ends of loop constraints stay. A culled
        keyframe's pose is kept relative to the keyframe it shares most points with (SlamMap.remove_keyframe).
        """
        with self.map.lock:
            protected = {newest, min(self.map.keyframes)}
            if self.loop_closer is not None:
                protected |= self.loop_closer.loop_keyframes()
            _, _, obs_pt = self.map.observations()
            observers = np.bincount(obs_pt, minlength=self.map.num_points)
            for kf_id in self.map.covisible_keyframes(newest, self.config.window_keyframes):
                if kf_id in protected:
                    continue
                pts = self.map.keyframes[kf_id].point_ids
                pts = pts[pts >= 0]
                pts = pts[self.map.alive[pts]]
                if len(pts) == 0 or np.mean(observers[pts] - 1 >= REDUNDANT_OBSERVERS) < self.config.redundant_ratio:
                    continue
                parent = self.map.covisible_keyframes(kf_id, 1)
                if not parent:
                    continue
                self.map.remove_keyframe(kf_id, parent[0])
                observers[pts] -= 1
                self.stats.culled_keyframes += 1
