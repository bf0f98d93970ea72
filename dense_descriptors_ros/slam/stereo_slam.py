"""StereoSlam: the one object a ROS node (or the CLI) calls per rectified stereo pair.

Per frame: features (left and right), stereo matching on rectified rows, then either map initialisation or tracking
(constant-velocity prediction, projection search against the local map, pose-only robust optimisation, a second
search with the refined pose), the keyframe decision (S-PTAM: tracked/reference ratio or too few matches), keyframe
insertion with new stereo points, local BA in the mapping thread, and loop closure. A lost tracker tries
relocalisation (global-descriptor retrieval + PnP RANSAC) and re-initialises from stereo after a few failures.

Per-frame poses are stored relative to their reference keyframe so the exported trajectory follows BA and loop
corrections.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.se3 import invert_pose
from dense_descriptors_ros.geometry.trajectory import Trajectory
from dense_descriptors_ros.slam.bundle_adjustment import optimize_pose
from dense_descriptors_ros.slam.features import (
    FeatureConfig,
    FeatureType,
    FrameFeatures,
    make_features,
    to_gray,
)
from dense_descriptors_ros.slam.local_mapping import LocalMapper, LocalMappingConfig
from dense_descriptors_ros.slam.loop_closure import (
    LoopCloser,
    LoopClosureConfig,
    LoopClosureEvent,
    localise_against,
    retrieve_keyframes,
)
from dense_descriptors_ros.slam.map import KeyFrame, SlamMap
from dense_descriptors_ros.slam.map_io import load_map, save_map
from dense_descriptors_ros.slam.stereo_matching import match_stereo_rows
from dense_descriptors_ros.slam.tracking import ConstantVelocityModel, search_by_projection

FEATURE_TYPES = ("learned", "orb")


class TrackingState(str, Enum):
    INITIALIZING = "initializing"
    TRACKING = "tracking"
    LOST = "lost"
    RELOCALIZED = "relocalized"


@dataclass
class TrackingConfig:
    """Frame tracking, keyframe policy and stereo geometry gates."""

    search_radius_px: float = field(default=15.0, metadata={"help": "projection search radius", "range": (1, 200)})
    refine_radius_px: float = field(
        default=4.0, metadata={"help": "second search radius after the pose refinement (0: off)", "range": (0, 50)}
    )
    min_inliers: int = field(default=15, metadata={"help": "pose inliers to count as tracked", "range": (6, 1000)})
    local_map_keyframes: int = field(
        default=10, metadata={"help": "covisible keyframes whose points form the local map", "range": (1, 100)}
    )
    keyframe_tracked_ratio: float = field(
        default=0.7,
        metadata={"help": "new keyframe when tracked/reference-keyframe points drop below", "range": (0.0, 1.0)},
    )
    keyframe_min_tracked: int = field(
        default=50, metadata={"help": "new keyframe when fewer points are tracked", "range": (0, 10000)}
    )
    keyframe_max_frames: int = field(
        default=20, metadata={"help": "new keyframe at the latest after this many frames", "range": (1, 10000)}
    )
    min_depth: float = field(default=0.1, metadata={"help": "nearest stereo point (m)", "range": (0.01, 100.0)})
    max_depth: float = field(default=40.0, metadata={"help": "farthest stereo point (m)", "range": (0.1, 1e4)})
    stereo_max_row_px: float = field(
        default=1.5, metadata={"help": "stereo matches lie within this many rows", "range": (0.0, 20.0)}
    )
    min_init_points: int = field(default=30, metadata={"help": "stereo points to start a map", "range": (6, 10000)})
    reinit_after_lost_frames: int = field(
        default=5, metadata={"help": "re-initialise from stereo after this many lost frames", "range": (1, 10000)}
    )


@dataclass
class StereoSlamConfig:
    """Everything StereoSlam needs besides the camera."""

    feature_type: str = field(default="learned", metadata={"help": "learned or orb", "choices": FEATURE_TYPES})
    features: FeatureConfig = field(default_factory=FeatureConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    mapping: LocalMappingConfig = field(default_factory=LocalMappingConfig)
    loop_closure: LoopClosureConfig = field(default_factory=LoopClosureConfig)


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
    loop_closure: LoopClosureEvent | None
    timings_ms: dict[str, float]


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
    ) -> None:
        """``model_id`` names the descriptor model (stored in saved maps); ``descriptor_fn`` computes the dense
        descriptor image of an image when :meth:`process` is not given one (learned features only)."""
        self.camera = camera
        self.config = config or StereoSlamConfig()
        if self.config.feature_type not in FEATURE_TYPES:
            raise ValueError(f"feature_type must be one of {FEATURE_TYPES}, got {self.config.feature_type!r}")
        self.features: FeatureType = make_features(self.config.feature_type, self.config.features)
        self.model_id = model_id if self.config.feature_type == "learned" else "orb"
        self.descriptor_fn = descriptor_fn
        self.initial_pose = np.eye(4) if initial_pose is None else np.asarray(initial_pose, np.float64)
        self._descriptor_dim: int | None = None
        self.map: SlamMap | None = None
        self.mapper: LocalMapper | None = None
        self.loop_closer: LoopCloser | None = None
        self._reset_state()

    # ---- lifecycle ------------------------------------------------------------------------------------------
    def _reset_state(self) -> None:
        self.state = TrackingState.INITIALIZING
        self.motion = ConstantVelocityModel()
        self.frames: list[_FrameRecord] = []
        self.reference_kf: int | None = None
        self.last_tracked_ids = np.zeros(0, np.int64)
        self.frames_since_keyframe = 0
        self.lost_frames = 0
        self.tracking_ms: list[float] = []

    def _ensure_map(self, descriptor_dim: int) -> None:
        if self.map is None:
            self._descriptor_dim = descriptor_dim
            self.map = SlamMap(descriptor_dim, self.features.descriptor_dtype)
            self.mapper = LocalMapper(self.map, self.camera, self.config.mapping)
            self.loop_closer = LoopCloser(self.map, self.camera, self.features, self.config.loop_closure)

    def reset(self) -> None:
        """Forget the map and the trajectory."""
        self.close()
        self.map = None
        self.mapper = None
        self.loop_closer = None
        self._reset_state()

    def close(self) -> None:
        """Stop the mapping thread."""
        if self.mapper is not None:
            self.mapper.close()

    def wait_for_mapping(self, timeout: float | None = None) -> bool:
        """Block until local mapping has processed every queued keyframe."""
        return True if self.mapper is None else self.mapper.wait_idle(timeout)

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
        self._ensure_map(frame_l.descriptors.shape[1])
        context = _FrameContext(stamp, gray_l, left_desc, frame_l, right_x)
        if self.state == TrackingState.INITIALIZING:
            start = self.motion.predict(stamp)
            result = self._initialize(context, self.initial_pose if start is None else start)
        else:
            result = self._track(context)
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

    def _initialize(self, ctx: _FrameContext, T_world_cam: np.ndarray) -> SlamResult:
        stereo = np.isfinite(ctx.right_x)
        if stereo.sum() < self.config.tracking.min_init_points:
            self.frames.append(_FrameRecord(ctx.stamp, -1, T_world_cam.copy(), False))
            self.motion.update(ctx.stamp, T_world_cam)
            return self._result(
                ctx, T_world_cam, TrackingState.INITIALIZING, np.zeros(0, int), np.zeros(0, int), False, None
            )
        point_ids = np.full(len(ctx.frame), -1)
        kf = self._insert_keyframe(ctx, T_world_cam, point_ids)
        self.state = TrackingState.TRACKING
        self.motion.reset(keep_pose=False)
        self.motion.update(ctx.stamp, T_world_cam)
        self.lost_frames = 0
        tracked = np.nonzero(kf.point_ids >= 0)[0]
        return self._result(ctx, T_world_cam, TrackingState.TRACKING, tracked, kf.point_ids[tracked], True, None)

    def _local_map(self) -> np.ndarray:
        assert self.map is not None and self.reference_kf is not None
        with self.map.lock:
            kfs = [
                self.reference_kf,
                *self.map.covisible_keyframes(self.reference_kf, self.config.tracking.local_map_keyframes - 1),
            ]
            ids = np.concatenate([self.map.keyframes[k].point_ids for k in kfs] + [self.last_tracked_ids])
            ids = np.unique(ids[ids >= 0])
            return ids[self.map.alive[ids]]

    def _track(self, ctx: _FrameContext) -> SlamResult:
        assert self.map is not None
        cfg = self.config.tracking
        predicted = self.motion.predict(ctx.stamp)
        kp_idx = np.zeros(0, np.int64)
        if predicted is not None and self.reference_kf is not None:
            T_cw, kp_idx, pt_ids, visible_ids = self._track_local_map(ctx, invert_pose(predicted), cfg.search_radius_px)
            if len(kp_idx) < cfg.min_inliers:  # a bad prediction: search wider around the last pose
                T_cw, kp_idx, pt_ids, visible_ids = self._track_local_map(
                    ctx, invert_pose(self.motion.last_pose), 2.5 * cfg.search_radius_px
                )
        state = TrackingState.TRACKING
        if len(kp_idx) < cfg.min_inliers:
            relocalised = self._relocalise(ctx)
            if relocalised is None:
                return self._lost(ctx, predicted)
            T_cw, kp_idx, pt_ids, visible_ids = relocalised
            state = TrackingState.RELOCALIZED
            self.motion.reset(keep_pose=True)
        T_wc = invert_pose(T_cw)
        with self.map.lock:
            self.map.visible_count[visible_ids] += 1
            self.map.found_count[pt_ids] += 1
            self.map.descriptors[pt_ids] = ctx.frame.descriptors[kp_idx]  # S-PTAM keeps the newest descriptor
        self.lost_frames = 0
        self.state = state
        self.last_tracked_ids = pt_ids
        self._update_reference(pt_ids)
        is_kf = self._need_keyframe(len(pt_ids))
        loop = None
        if is_kf:
            point_ids = np.full(len(ctx.frame), -1)
            point_ids[kp_idx] = pt_ids
            kf = self._insert_keyframe(ctx, T_wc, point_ids)
            loop = self._close_loop(kf)
            if loop is not None:
                T_wc = self.map.keyframes[kf.id].T_world_cam.copy()
        else:
            self.frames_since_keyframe += 1
            self._record(ctx.stamp, T_wc, True)
        self.motion.update(ctx.stamp, T_wc)
        return self._result(ctx, T_wc, state, kp_idx, pt_ids, is_kf, loop)

    def _track_local_map(self, ctx: _FrameContext, T_cw: np.ndarray, radius: float):
        """Projection search + pose refinement + a second, tighter search. Returns (T_cw, kp, pts, visible)."""
        assert self.map is not None
        cfg = self.config.tracking
        ids = self._local_map()
        with self.map.lock:
            positions = self.map.positions[ids].copy()
            descriptors = self.map.descriptors[ids].copy()
        tree = ctx.keypoint_tree
        m = search_by_projection(
            self.camera, T_cw, positions, descriptors, ctx.frame, tree, self.features, radius, max_depth=cfg.max_depth
        )
        empty = np.zeros(0, np.int64)
        if len(m.point_index) < cfg.min_inliers:
            return T_cw, empty, empty, ids[m.visible]
        T_cw, inlier = self._optimize(ctx, T_cw, positions[m.point_index], m.keypoint_index)
        if inlier.sum() < cfg.min_inliers:
            return T_cw, empty, empty, ids[m.visible]
        if cfg.refine_radius_px > 0:
            m = search_by_projection(
                self.camera,
                T_cw,
                positions,
                descriptors,
                ctx.frame,
                tree,
                self.features,
                cfg.refine_radius_px,
                max_depth=cfg.max_depth,
            )
            if len(m.point_index) >= cfg.min_inliers:
                T_cw, inlier = self._optimize(ctx, T_cw, positions[m.point_index], m.keypoint_index)
        return T_cw, m.keypoint_index[inlier], ids[m.point_index[inlier]], ids[m.visible]

    def _optimize(self, ctx: _FrameContext, T_cw: np.ndarray, points: np.ndarray, kp_idx: np.ndarray):
        meas = np.zeros((len(kp_idx), 3))
        meas[:, :2] = ctx.frame.keypoints[kp_idx]
        right = ctx.right_x[kp_idx]
        stereo = np.isfinite(right)
        meas[:, 2] = np.where(stereo, right, 0.0)
        return optimize_pose(self.camera, T_cw, points, meas, stereo)

    def _relocalise(self, ctx: _FrameContext):
        assert self.map is not None
        descriptor = self.features.global_descriptor(ctx.gray, ctx.descriptor_image, ctx.frame)
        for cand, _ in retrieve_keyframes(self.map, descriptor, None, self.config.loop_closure.candidates):
            T_cw, inliers, _, kp, pts = localise_against(
                self.map, self.camera, self.features, ctx.frame.keypoints, ctx.frame.descriptors, ctx.right_x, cand
            )
            if T_cw is not None and inliers >= self.config.tracking.min_inliers:
                self.reference_kf = cand
                T_cw, kp, pts, visible = self._track_local_map(ctx, T_cw, self.config.tracking.refine_radius_px or 4.0)
                if len(kp) >= self.config.tracking.min_inliers:
                    return T_cw, kp, pts, visible
        return None

    def _lost(self, ctx: _FrameContext, predicted: np.ndarray | None) -> SlamResult:
        self.lost_frames += 1
        self.state = TrackingState.LOST
        if predicted is None:  # a loaded map and no pose yet: keep trying to relocalise
            empty = np.zeros(0, np.int64)
            return self._result(ctx, np.eye(4), TrackingState.LOST, empty, empty, False, None)
        if self.lost_frames >= self.config.tracking.reinit_after_lost_frames:
            # Start a new map segment at the predicted pose (the world frame is kept, the scale is metric).
            self.state = TrackingState.INITIALIZING
            return self._initialize(ctx, predicted)
        self.frames.append(_FrameRecord(ctx.stamp, -1, predicted.copy(), False))
        self.motion.update(ctx.stamp, predicted)
        empty = np.zeros(0, np.int64)
        return self._result(ctx, predicted, TrackingState.LOST, empty, empty, False, None)

    def _update_reference(self, tracked_ids: np.ndarray) -> None:
        """The reference keyframe is the local keyframe that observes most of the tracked points."""
        assert self.map is not None and self.reference_kf is not None
        with self.map.lock:
            kfs = [self.reference_kf, *self.map.covisible_keyframes(self.reference_kf, 5)]
            counts = [np.isin(self.map.keyframes[k].point_ids, tracked_ids).sum() for k in kfs]
        self.reference_kf = kfs[int(np.argmax(counts))]

    def _need_keyframe(self, tracked: int) -> bool:
        assert self.map is not None and self.reference_kf is not None
        cfg = self.config.tracking
        ref_points = int((self.map.keyframes[self.reference_kf].point_ids >= 0).sum())
        return (
            tracked < cfg.keyframe_tracked_ratio * ref_points
            or tracked < cfg.keyframe_min_tracked
            or self.frames_since_keyframe + 1 >= cfg.keyframe_max_frames
        )

    def _insert_keyframe(self, ctx: _FrameContext, T_world_cam: np.ndarray, point_ids: np.ndarray) -> KeyFrame:
        """Create a keyframe, triangulate its unmatched stereo keypoints as new points, hand it to mapping."""
        assert self.map is not None and self.mapper is not None
        cfg = self.config.tracking
        new = np.nonzero((point_ids < 0) & np.isfinite(ctx.right_x))[0]
        kp = ctx.frame.keypoints[new]
        pc = self.camera.triangulate(kp[:, 0], kp[:, 1], ctx.right_x[new])
        ok = (pc[:, 2] >= cfg.min_depth) & (pc[:, 2] <= cfg.max_depth)
        new, pc = new[ok], pc[ok]
        kf_id = self.map.new_keyframe_id()
        pw = pc @ T_world_cam[:3, :3].T + T_world_cam[:3, 3]
        point_ids = point_ids.copy()
        point_ids[new] = self.map.add_points(pw, ctx.frame.descriptors[new], T_world_cam[:3, 3], kf_id)
        kf = KeyFrame(
            id=kf_id,
            stamp=ctx.stamp,
            T_world_cam=T_world_cam.copy(),
            keypoints=ctx.frame.keypoints.copy(),
            descriptors=ctx.frame.descriptors.copy(),
            right_x=ctx.right_x.copy(),
            point_ids=point_ids,
            global_descriptor=self.features.global_descriptor(ctx.gray, ctx.descriptor_image, ctx.frame),
        )
        self.map.add_keyframe(kf)
        self.reference_kf = kf_id
        self.frames_since_keyframe = 0
        self._record(ctx.stamp, T_world_cam, True)
        self.mapper.submit(kf_id)
        return kf

    def _close_loop(self, kf: KeyFrame) -> LoopClosureEvent | None:
        assert self.loop_closer is not None and self.mapper is not None
        if not self.config.loop_closure.enabled:
            return None
        found = self.loop_closer.check(kf)
        if found is None:
            return None
        event, corrections = found
        self.motion.apply_correction(corrections[kf.id])
        return event

    def _record(self, stamp: float, T_world_cam: np.ndarray, tracked: bool) -> None:
        assert self.map is not None and self.reference_kf is not None
        T_ref = self.map.keyframes[self.reference_kf].T_world_cam
        self.frames.append(_FrameRecord(stamp, self.reference_kf, invert_pose(T_ref) @ T_world_cam, tracked))

    def _result(
        self,
        ctx: _FrameContext,
        T_wc: np.ndarray,
        state: TrackingState,
        kp_idx: np.ndarray,
        pt_ids: np.ndarray,
        is_kf: bool,
        loop: LoopClosureEvent | None,
    ) -> SlamResult:
        return SlamResult(
            stamp=ctx.stamp,
            T_world_cam=T_wc.copy(),
            state=state,
            tracked_pixels=ctx.frame.keypoints[kp_idx],
            tracked_point_ids=np.asarray(pt_ids),
            num_keypoints=len(ctx.frame),
            num_stereo=int(np.isfinite(ctx.right_x).sum()),
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
        self._descriptor_dim = loaded.descriptor_dim
        self.map = loaded
        self.mapper = LocalMapper(self.map, self.camera, self.config.mapping)
        self.loop_closer = LoopCloser(self.map, self.camera, self.features, self.config.loop_closure)
        self.state = TrackingState.LOST

    # ---- outputs --------------------------------------------------------------------------------------------
    def trajectory(self, tracked_only: bool = False) -> Trajectory:
        """Per-frame T_world_cam, following BA and loop corrections of each frame's reference keyframe."""
        stamps, poses = [], []
        for rec in self.frames:
            if tracked_only and not rec.tracked:
                continue
            if rec.reference_kf >= 0 and self.map is not None and rec.reference_kf in self.map.keyframes:
                poses.append(self.map.keyframes[rec.reference_kf].T_world_cam @ rec.T_ref_cam)
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


@dataclass
class _FrameContext:
    stamp: float
    gray: np.ndarray
    descriptor_image: np.ndarray | None
    frame: FrameFeatures
    right_x: np.ndarray
    _tree: cKDTree | None = None

    @property
    def keypoint_tree(self) -> cKDTree:
        if self._tree is None:
            self._tree = cKDTree(self.frame.keypoints if len(self.frame) else np.zeros((1, 2)) - 1e9)
        return self._tree
