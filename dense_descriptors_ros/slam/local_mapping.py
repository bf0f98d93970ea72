"""Local mapping: windowed bundle adjustment and map culling, in a worker thread that never stalls tracking.

Keyframes (with their new points, triangulated on the tracking thread as S-PTAM does) are queued here. The worker
takes every queued keyframe, builds a BA window (the newest keyframe and its most covisible keyframes are adjusted;
the other keyframes that see the window's points are held fixed), copies the window out under the map lock, solves
it without the lock (numpy/scipy release the GIL), writes poses and points back under the lock, removes outlier
observations and culls bad points (S-PTAM ``MapPoint::IsBad``). ``synchronous=True`` runs the same work inline,
for deterministic tests and offline runs.
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
from dense_descriptors_ros.slam.bundle_adjustment import (
    CHI2_STEREO_95,
    BundleAdjustmentProblem,
    solve_bundle_adjustment,
)
from dense_descriptors_ros.slam.map import SlamMap

log = logging.getLogger(__name__)


@dataclass
class LocalMappingConfig:
    """Windowed bundle adjustment and culling."""

    enabled: bool = field(default=True, metadata={"help": "run local bundle adjustment on new keyframes"})
    window_keyframes: int = field(default=8, metadata={"help": "keyframes adjusted per BA", "range": (2, 50)})
    fixed_keyframes: int = field(default=8, metadata={"help": "most fixed keyframes in a BA", "range": (1, 100)})
    iterations: int = field(default=8, metadata={"help": "LM iterations per BA pass", "range": (1, 100)})
    synchronous: bool = field(default=False, metadata={"help": "run BA inline (deterministic) instead of a thread"})
    cull_min_found_ratio: float = field(
        default=0.25,
        metadata={"help": "cull points found in less than this share of predicted views", "range": (0.0, 1.0)},
    )


@dataclass
class MappingStats:
    bundle_adjustments: int = 0
    ba_seconds: list[float] = field(default_factory=list)
    culled_points: int = 0


class LocalMapper:
    """Runs BA and culling for queued keyframes, in a daemon thread or inline."""

    def __init__(self, slam_map: SlamMap, camera: StereoCamera, config: LocalMappingConfig | None = None) -> None:
        self.map = slam_map
        self.camera = camera
        self.config = config or LocalMappingConfig()
        self.stats = MappingStats()
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._pending = 0  # keyframes submitted and not yet processed, guarded by _done
        self._done = threading.Condition()
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None
        if not self.config.synchronous and self.config.enabled:
            self._thread = threading.Thread(target=self._run, name="slam-local-mapping", daemon=True)
            self._thread.start()

    def submit(self, keyframe_id: int) -> None:
        """Queue a keyframe inserted into the map; returns at once unless synchronous."""
        if not self.config.enabled:
            return
        if self._thread is None:
            self.process([keyframe_id])
            return
        with self._done:
            self._pending += 1
        self._abort.set()  # a newer keyframe makes the running BA stop early (S-PTAM's abort)
        self._queue.put(keyframe_id)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every queued keyframe is processed; False on timeout."""
        with self._done:
            return self._done.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10.0)
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
            self._abort.clear()
            try:
                self.process(batch)
            except Exception:  # the tracker must survive a failed BA; the error is logged with its traceback
                log.exception("local mapping failed")
            with self._done:
                self._pending -= len(batch)
                self._done.notify_all()

    def process(self, keyframe_ids: list[int]) -> None:
        """BA around the newest of ``keyframe_ids``, then outlier removal and point culling."""
        with self.map.lock:
            newest = (
                max(k for k in keyframe_ids if k in self.map.keyframes)
                if any(k in self.map.keyframes for k in keyframe_ids)
                else None
            )
        if newest is None:
            return
        start = time.perf_counter()
        self.bundle_adjust(newest)
        self.stats.ba_seconds.append(time.perf_counter() - start)
        self.stats.bundle_adjustments += 1
        self.cull_points()

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
            poses,
            positions,
            cam_index,
            point_slot,
            meas,
            stereo,
            np.array([k in fixed for k in frames]),
        )
        result = solve_bundle_adjustment(
            self.camera,
            problem,
            iterations=cfg.iterations,
            outlier_chi2=CHI2_STEREO_95,
            should_stop=self._abort.is_set if self._thread is not None else None,
        )
        with self.map.lock:
            if self.map.version != version:  # a loop closure moved the map meanwhile: drop this result
                return
            for i, k in enumerate(window):
                if k in self.map.keyframes:
                    self.map.keyframes[k].T_world_cam = invert_pose(result.poses[i])
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
