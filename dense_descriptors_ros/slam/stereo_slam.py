"""StereoSlam: the one object a ROS node (or the CLI) calls per rectified stereo pair.

Per frame: a loop correction that local mapping has solved since the last frame is applied first; then features
(left and right), stereo matching on rectified rows, then either map initialisation or tracking by the
:class:`FrameTracker` from the constant-velocity prediction (projection search against the local map, pose-only
robust optimisation, relocalisation when that fails), the keyframe decision, and keyframe insertion with new stereo
points. Local BA, culling and loop detection run in the mapping thread (local_mapping.py), the GTSAM solves in its
worker process. A lost frame keeps the prediction; after a few lost frames the SLAM re-initialises from stereo.

``localization_only``: track in a loaded map without changing it (no keyframes, no mapping, no re-initialisation);
lost frames keep relocalising against the map.

Per-frame poses are stored relative to their reference keyframe so the exported trajectory follows BA and loop
corrections. Each tracked frame's pose covariance is the pose-only estimate's (given the map) plus its reference
keyframe's marginal covariance from the last GTSAM bundle adjustment, carried to the frame.

Long file: the per-frame state machine (initialise, track, lost, relocalise, keyframe, hand-over of mapping results)
reads as one sequence; its parts already live in frame_tracker.py, local_mapping.py and loop_closure.py.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.se3 import invert_pose, se3_adjoint, transform_points
from dense_descriptors_ros.geometry.trajectory import Trajectory
from dense_descriptors_ros.slam.features import FeatureConfig, FeatureType, feature_class, make_features, to_gray
from dense_descriptors_ros.slam.frame_tracker import FrameTracker, StereoFeatures, TrackedFrame, TrackingConfig
from dense_descriptors_ros.slam.gtsam_support import require_gtsam
from dense_descriptors_ros.slam.local_mapping import LocalMapper, LocalMappingConfig
from dense_descriptors_ros.slam.loop_closure import (
    LoopCloser,
    LoopClosureConfig,
    LoopClosureEvent,
    apply_loop_correction,
)
from dense_descriptors_ros.slam.map import KeyFrame, SlamMap
from dense_descriptors_ros.slam.map_io import load_map, save_map
from dense_descriptors_ros.slam.motion_model import ConstantVelocityModel
from dense_descriptors_ros.slam.solver_process import shared_worker
from dense_descriptors_ros.slam.stereo_matching import match_stereo_rows

FEATURE_TYPES = ("learned", "orb")


class TrackingState(str, Enum):
    INITIALIZING = "initializing"
    TRACKING = "tracking"
    LOST = "lost"
    RELOCALIZED = "relocalized"


@dataclass
class StereoSlamConfig:
    """Everything StereoSlam needs besides the camera."""

    feature_type: str = field(default="learned", metadata={"help": "learned or orb", "choices": FEATURE_TYPES})
    features: FeatureConfig = field(default_factory=FeatureConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    mapping: LocalMappingConfig = field(default_factory=LocalMappingConfig)
    loop_closure: LoopClosureConfig = field(default_factory=LoopClosureConfig)

    @property
    def needs_descriptor_image(self) -> bool:
        """Whether the feature type reads dense descriptor images (a descriptor network has to run)."""
        return feature_class(self.feature_type).needs_descriptor_image


@dataclass
class SlamResult:
    """What one call of :meth:`StereoSlam.process` produced."""

    stamp: float
    T_world_cam: np.ndarray  # best estimate (the prediction while lost)
    state: TrackingState
    tracked_pixels: np.ndarray  # (N, 2) left-image pixels of the tracked map points
    tracked_point_ids: np.ndarray  # (N,)
    num_keypoints: int
    num_stereo: int
    is_keyframe: bool
    loop_closure: LoopClosureEvent | None  # a loop correction applied at this frame
    timings_ms: dict[str, float]
    # 6x6 covariance of T_world_cam as a right perturbation, (translation, rotation) order; None when not tracked.
    covariance: np.ndarray | None = None
    has_pose: bool = True  # False while a loaded map has not placed the camera yet


@dataclass
class _FrameRecord:
    stamp: float
    reference_kf: int
    T_ref_cam: np.ndarray
    tracked: bool


class StereoSlam:
    """S-PTAM-style stereo SLAM on pluggable features (learned dense descriptors or ORB)."""

    def __init__(
        self,
        camera: StereoCamera,
        config: StereoSlamConfig | None = None,
        model_id: str = "",
        descriptor_fn: Callable[[np.ndarray], np.ndarray] | None = None,
        initial_pose: np.ndarray | None = None,
        localization_only: bool = False,
    ) -> None:
        """``model_id`` names the descriptor model (stored in saved maps); ``descriptor_fn`` computes the dense
        descriptor image of an image when :meth:`process` is not given one (learned features only);
        ``localization_only`` tracks in a map given to :meth:`load_map` without changing it.

        Raises GtsamMissingError (naming the package) when GTSAM, the mapping back-end, does not import.
        """
        require_gtsam()
        self.camera = camera
        self.config = config or StereoSlamConfig()
        if not (localization_only or self.config.mapping.synchronous):
            shared_worker()  # start the GTSAM worker process now, not at the first keyframe
        if self.config.feature_type not in FEATURE_TYPES:
            raise ValueError(f"feature_type must be one of {FEATURE_TYPES}, got {self.config.feature_type!r}")
        self.features: FeatureType = make_features(self.config.feature_type, self.config.features)
        self.model_id = model_id if self.features.needs_descriptor_image else self.features.name
        self.descriptor_fn = descriptor_fn
        self.initial_pose = np.eye(4) if initial_pose is None else np.asarray(initial_pose, np.float64)
        self.localization_only = localization_only
        self._descriptor_dim: int | None = None
        self.map: SlamMap | None = None
        self.mapper: LocalMapper | None = None
        self.loop_closer: LoopCloser | None = None
        self.tracker: FrameTracker | None = None
        self._reset_state()

    # ---- lifecycle ------------------------------------------------------------------------------------------
    def _reset_state(self) -> None:
        self.state = TrackingState.INITIALIZING
        self.motion = ConstantVelocityModel()
        self.frames: list[_FrameRecord] = []
        self.lost_frames = 0
        self.tracking_ms: list[float] = []

    def _attach_map(self, slam_map: SlamMap) -> None:
        """Work on ``slam_map``: its frame tracker and (mapping) its local mapper and loop closer."""
        self._descriptor_dim = slam_map.descriptor_dim
        self.map = slam_map
        if not self.localization_only:
            self.loop_closer = LoopCloser(slam_map, self.camera, self.features, self.config.loop_closure)
            self.mapper = LocalMapper(
                slam_map,
                self.camera,
                self.config.mapping,
                self.loop_closer if self.config.loop_closure.enabled else None,
            )
        self.tracker = FrameTracker(
            slam_map,
            self.camera,
            self.features,
            self.config.tracking,
            self.config.loop_closure.candidates,
            update_map=not self.localization_only,
        )

    def reset(self) -> None:
        """Forget the map and the trajectory."""
        self.close()
        self.map = None
        self.mapper = None
        self.loop_closer = None
        self.tracker = None
        self._reset_state()

    def close(self) -> None:
        """Stop the mapping thread."""
        if self.mapper is not None:
            self.mapper.close()

    def wait_for_mapping(self, timeout: float | None = None) -> bool:
        """Block until local mapping has processed every queued keyframe, then apply any loop correction it made
        (call it from the thread that calls :meth:`process`)."""
        idle = True if self.mapper is None else self.mapper.wait_idle(timeout)
        self._apply_loop_corrections()
        return idle

    # ---- per frame ------------------------------------------------------------------------------------------
    def process(
        self,
        stamp: float,
        left: np.ndarray,
        right: np.ndarray,
        left_desc: np.ndarray | None = None,
        right_desc: np.ndarray | None = None,
    ) -> SlamResult:
        """Track one rectified stereo pair (uint8 RGB or gray); dense descriptors (H, W, D) for learned features."""
        gray_l, gray_r = to_gray(left), to_gray(right)
        if gray_l.shape != gray_r.shape:
            raise ValueError(f"left and right images differ in size: {gray_l.shape} vs {gray_r.shape}")
        if gray_l.shape != (self.camera.height, self.camera.width):
            raise ValueError(
                f"image is {gray_l.shape[1]}x{gray_l.shape[0]} but the camera is "
                f"{self.camera.width}x{self.camera.height}"
            )
        if self.frames and stamp <= self.frames[-1].stamp:
            raise ValueError(f"stamps must increase: got {stamp} after {self.frames[-1].stamp}")
        if self.features.needs_descriptor_image:
            left_desc = self._descriptors_for(left, left_desc, "left")
            right_desc = self._descriptors_for(right, right_desc, "right")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        loop = self._apply_loop_corrections()
        frame_l = self.features.extract(gray_l, left_desc)
        frame_r = self.features.extract(gray_r, right_desc)
        t1 = time.perf_counter()
        right_x = match_stereo_rows(
            frame_l,
            frame_r,
            self.features,
            self.camera,
            self.config.tracking.stereo_max_row_px,
            self.config.tracking.min_depth,
            self.config.tracking.max_depth,
        )
        t2 = time.perf_counter()
        timings["features_ms"] = 1e3 * (t1 - t0)
        timings["stereo_ms"] = 1e3 * (t2 - t1)
        frame = StereoFeatures(stamp, gray_l, left_desc, frame_l, right_x)
        if self.map is None and self.localization_only:  # nothing to localise in yet
            result = self._result(frame, np.eye(4), TrackingState.LOST, np.zeros(0, int), np.zeros(0, int), False)
            result.has_pose = False
        else:
            if self.map is None:
                self._attach_map(SlamMap(frame_l.descriptors.shape[1], self.features.descriptor_dtype))
            predicted = self.motion.predict(stamp)
            if self.state == TrackingState.INITIALIZING:
                result = self._initialize(frame, self.initial_pose if predicted is None else predicted)
            else:
                result = self._track(frame, predicted)
        result.loop_closure = result.loop_closure or loop
        t3 = time.perf_counter()
        timings["tracking_ms"] = 1e3 * (t3 - t2)
        timings["total_ms"] = 1e3 * (t3 - t0)
        self.tracking_ms.append(timings["total_ms"])
        result.timings_ms = timings
        return result

    def _descriptors_for(self, image: np.ndarray, desc: np.ndarray | None, side: str) -> np.ndarray:
        if desc is None:
            if self.descriptor_fn is None:
                raise ValueError(
                    f"learned features need the {side} dense descriptor image: pass {side}_desc or give "
                    "StereoSlam a descriptor_fn"
                )
            desc = self.descriptor_fn(image)
        desc = np.asarray(desc, dtype=np.float32)
        if desc.ndim != 3 or desc.shape[:2] != (self.camera.height, self.camera.width):
            raise ValueError(
                f"{side} descriptor image must be (H, W, D) = ({self.camera.height}, {self.camera.width}, D), "
                f"got {desc.shape}"
            )
        if self._descriptor_dim is not None and desc.shape[2] != self._descriptor_dim:
            raise ValueError(f"{side} descriptors have D={desc.shape[2]}, the map uses D={self._descriptor_dim}")
        return desc

    def _initialize(self, frame: StereoFeatures, T_world_cam: np.ndarray) -> SlamResult:
        stereo = np.isfinite(frame.right_x)
        if stereo.sum() < self.config.tracking.min_init_points:
            self.frames.append(_FrameRecord(frame.stamp, -1, T_world_cam.copy(), False))
            self.motion.update(frame.stamp, T_world_cam)
            return self._result(
                frame, T_world_cam, TrackingState.INITIALIZING, np.zeros(0, int), np.zeros(0, int), False
            )
        point_ids = np.full(len(frame.frame), -1)
        kf = self._insert_keyframe(frame, T_world_cam, point_ids)
        self.state = TrackingState.TRACKING
        self.motion.reset(keep_pose=False)
        loop = self._apply_loop_corrections()  # synchronous mapping: a loop at this keyframe
        T_world_cam = self.map.keyframes[kf.id].T_world_cam.copy()
        self.motion.update(frame.stamp, T_world_cam)
        self.lost_frames = 0
        tracked = np.nonzero(kf.point_ids >= 0)[0]
        return self._result(frame, T_world_cam, TrackingState.TRACKING, tracked, kf.point_ids[tracked], True, loop)

    def _track(self, frame: StereoFeatures, predicted: np.ndarray | None) -> SlamResult:
        assert self.map is not None and self.tracker is not None
        tracked = self.tracker.track(frame, predicted, self.motion.last_pose, self.motion.velocity is not None)
        if tracked is None:
            return self._lost(frame, predicted)
        if tracked.relocalised:
            self.motion.reset(keep_pose=True)
        state = TrackingState.RELOCALIZED if tracked.relocalised else TrackingState.TRACKING
        self.lost_frames = 0
        self.state = state
        T_wc = tracked.T_world_cam
        is_kf = not self.localization_only and self.tracker.keyframe_due(len(tracked.point_ids))
        loop = None
        if is_kf:
            kf = self._insert_keyframe(frame, T_wc, self._keyframe_point_ids(frame, tracked))
            loop = self._apply_loop_corrections()  # synchronous mapping: a loop at this keyframe
            if loop is not None:
                T_wc = self.map.keyframes[kf.id].T_world_cam.copy()
        else:
            self._record(frame.stamp, T_wc, True)
        self.motion.update(frame.stamp, T_wc)
        result = self._result(frame, T_wc, state, tracked.keypoint_index, tracked.point_ids, is_kf, loop)
        result.covariance = self._pose_covariance(T_wc, tracked.information)
        return result

    def _pose_covariance(self, T_world_cam: np.ndarray, information: np.ndarray) -> np.ndarray | None:
        """Covariance of a tracked pose: the pose-only estimate's, plus the reference keyframe's marginal
        covariance carried to the frame (T_wf = T_wk T_kf, so a keyframe perturbation xi moves the frame by
        Ad(T_fk) xi)."""
        assert self.map is not None and self.tracker is not None
        try:
            covariance = np.linalg.inv(information)
        except np.linalg.LinAlgError:
            return None
        with self.map.lock:
            kf = self.map.keyframes[self.tracker.resolve_reference()]
            kf_covariance, T_world_kf = kf.covariance, kf.T_world_cam.copy()
        if kf_covariance is not None:
            Ad = se3_adjoint(invert_pose(T_world_cam) @ T_world_kf)
            covariance = covariance + Ad @ kf_covariance @ Ad.T
        return covariance

    @staticmethod
    def _keyframe_point_ids(frame: StereoFeatures, tracked: TrackedFrame) -> np.ndarray:
        """Per keypoint of the frame, the map point it tracked (-1: none)."""
        point_ids = np.full(len(frame.frame), -1)
        point_ids[tracked.keypoint_index] = tracked.point_ids
        return point_ids

    def _lost(self, frame: StereoFeatures, predicted: np.ndarray | None) -> SlamResult:
        self.lost_frames += 1
        self.state = TrackingState.LOST
        empty = np.zeros(0, np.int64)
        if predicted is None:  # a loaded map and no pose yet: keep trying to relocalise
            result = self._result(frame, np.eye(4), TrackingState.LOST, empty, empty, False)
            result.has_pose = False
            return result
        if not self.localization_only and self.lost_frames >= self.config.tracking.reinit_after_lost_frames:
            # Start a new map segment at the predicted pose (the world frame is kept, the scale is metric).
            self.state = TrackingState.INITIALIZING
            return self._initialize(frame, predicted)
        self.frames.append(_FrameRecord(frame.stamp, -1, predicted.copy(), False))
        self.motion.update(frame.stamp, predicted)
        return self._result(frame, predicted, TrackingState.LOST, empty, empty, False)

    def _insert_keyframe(self, frame: StereoFeatures, T_world_cam: np.ndarray, point_ids: np.ndarray) -> KeyFrame:
        """Create a keyframe, triangulate its unmatched stereo keypoints as new points, hand it to mapping."""
        assert self.map is not None and self.mapper is not None and self.tracker is not None
        cfg = self.config.tracking
        new = np.nonzero((point_ids < 0) & np.isfinite(frame.right_x))[0]
        kp = frame.frame.keypoints[new]
        pc = self.camera.triangulate(kp[:, 0], kp[:, 1], frame.right_x[new])
        ok = (pc[:, 2] >= cfg.min_depth) & (pc[:, 2] <= cfg.max_depth)
        new, pc = new[ok], pc[ok]
        kf_id = self.map.new_keyframe_id()
        point_ids = point_ids.copy()
        point_ids[new] = self.map.add_points(
            transform_points(T_world_cam, pc), frame.frame.descriptors[new], T_world_cam[:3, 3], kf_id
        )
        kf = KeyFrame(
            id=kf_id,
            stamp=frame.stamp,
            T_world_cam=T_world_cam.copy(),
            keypoints=frame.frame.keypoints.copy(),
            descriptors=frame.frame.descriptors.copy(),
            right_x=frame.right_x.copy(),
            point_ids=point_ids,
            global_descriptor=self.features.global_descriptor(frame.gray, frame.descriptor_image, frame.frame),
        )
        self.map.add_keyframe(kf)
        self.tracker.keyframe_inserted(kf_id)
        self._record(frame.stamp, T_world_cam, True)
        self.mapper.submit(kf_id)
        return kf

    def _apply_loop_corrections(self) -> LoopClosureEvent | None:
        """Apply the loop corrections local mapping has solved (on this, the tracking thread, between frames, so a
        frame never mixes poses from before and after); returns the last one's event."""
        if self.mapper is None:
            return None
        assert self.map is not None and self.tracker is not None
        event = None
        while True:
            try:
                correction = self.mapper.loop_corrections.get_nowait()
            except queue.Empty:
                return event
            corrections = apply_loop_correction(self.map, correction)
            if self.tracker.reference_kf is not None:
                with self.map.lock:
                    reference = self.tracker.resolve_reference()
                self.motion.apply_correction(corrections[reference])
            event = correction.event

    def _record(self, stamp: float, T_world_cam: np.ndarray, tracked: bool) -> None:
        assert self.map is not None and self.tracker is not None
        with self.map.lock:
            reference = self.tracker.resolve_reference()
            T_ref = self.map.keyframes[reference].T_world_cam
        self.frames.append(_FrameRecord(stamp, reference, invert_pose(T_ref) @ T_world_cam, tracked))

    def _result(
        self,
        frame: StereoFeatures,
        T_wc: np.ndarray,
        state: TrackingState,
        kp_idx: np.ndarray,
        pt_ids: np.ndarray,
        is_kf: bool,
        loop: LoopClosureEvent | None = None,
    ) -> SlamResult:
        return SlamResult(
            stamp=frame.stamp,
            T_world_cam=T_wc.copy(),
            state=state,
            tracked_pixels=frame.frame.keypoints[kp_idx],
            tracked_point_ids=np.asarray(pt_ids),
            num_keypoints=len(frame.frame),
            num_stereo=int(np.isfinite(frame.right_x).sum()),
            is_keyframe=is_kf,
            loop_closure=loop,
            timings_ms={},
        )

    # ---- map files ------------------------------------------------------------------------------------------
    def save_map(self, folder: str | Path) -> Path:
        """Save the map (npz + yaml) with this SLAM's descriptor model id."""
        if self.map is None:
            raise ValueError("there is no map to save yet: process some frames first")
        self.wait_for_mapping(timeout=30.0)
        return save_map(folder, self.map, self.model_id, self.config.feature_type, self.camera)

    def load_map(self, folder: str | Path) -> None:
        """Replace the map by a saved one (same descriptor model only) and relocalise in it on the next frames."""
        loaded = load_map(folder, self.model_id, self.config.feature_type, self._descriptor_dim)
        self.reset()
        self._attach_map(loaded)
        self.state = TrackingState.LOST

    # ---- outputs --------------------------------------------------------------------------------------------
    def trajectory(self, tracked_only: bool = False) -> Trajectory:
        """Per-frame T_world_cam, following BA and loop corrections of each frame's reference keyframe."""
        stamps, poses = [], []
        for rec in self.frames:
            if tracked_only and not rec.tracked:
                continue
            resolved = None
            if rec.reference_kf >= 0 and self.map is not None:
                resolved = self.map.resolve_keyframe(rec.reference_kf)
            if resolved is not None:
                kf_id, T_kf_ref = resolved
                poses.append(self.map.keyframes[kf_id].T_world_cam @ T_kf_ref @ rec.T_ref_cam)
            else:
                poses.append(rec.T_ref_cam)
            stamps.append(rec.stamp)
        return Trajectory(np.array(stamps), np.array(poses).reshape(-1, 4, 4))

    def keyframe_trajectory(self) -> Trajectory:
        if self.map is None:
            return Trajectory(np.zeros(0), np.zeros((0, 4, 4)))
        with self.map.lock:
            kfs = [self.map.keyframes[k] for k in self.map.keyframe_ids()]
            return Trajectory(np.array([k.stamp for k in kfs]), np.array([k.T_world_cam for k in kfs]))

    def map_points(self) -> np.ndarray:
        """(N, 3) positions of the alive map points."""
        if self.map is None:
            return np.zeros((0, 3))
        with self.map.lock:
            return self.map.positions[self.map.alive].copy()
