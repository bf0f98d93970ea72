"""FrameTracker: S-PTAM's tracking of one stereo frame against the local map of a SlamMap.

From a predicted pose (constant velocity) the local map (the points of the reference keyframe, of its covisible
keyframes and of the last tracked frame) is searched by projection, the pose is refined by pose-only robust
optimisation, and searched again with a tighter radius. A bad prediction gets a wider search around the last pose;
when that fails too the frame is relocalised in the whole map (relocalisation.py) and tracked in the local map found
there. The tracker also keeps the reference keyframe (the local keyframe that sees most of the tracked points) and
S-PTAM's keyframe policy. :class:`StereoSlam` owns the map, the motion model and the keyframes; it asks this class
where each frame is. Pose-only refinement stays in numpy (pose_optimisation.py): it is much faster than GTSAM for
this problem. A reference keyframe culled by local mapping is replaced by the keyframe that stands for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.se3 import invert_pose
from dense_descriptors_ros.slam.features import FeatureType, FrameFeatures
from dense_descriptors_ros.slam.map import SlamMap
from dense_descriptors_ros.slam.pose_optimisation import PoseEstimate, optimize_pose
from dense_descriptors_ros.slam.projection_search import search_by_projection
from dense_descriptors_ros.slam.relocalisation import relocalisation_poses


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
class StereoFeatures:
    """One rectified stereo pair as tracking sees it: the left image's features and, per keypoint, the column of its
    stereo match in the right image (NaN: none)."""

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


@dataclass
class TrackedFrame:
    """Where a frame is and which map points it sees."""

    T_world_cam: np.ndarray
    keypoint_index: np.ndarray  # (N,) into the frame's keypoints
    point_ids: np.ndarray  # (N,) the map points they observe
    relocalised: bool  # found by relocalisation rather than from the motion prediction
    information: np.ndarray  # 6x6 of the pose given the map (pose_optimisation.PoseEstimate)


class FrameTracker:
    """Tracks frames against the local map around a reference keyframe (S-PTAM tracking)."""

    def __init__(
        self,
        slam_map: SlamMap,
        camera: StereoCamera,
        features: FeatureType,
        config: TrackingConfig,
        relocalisation_candidates: int,
        update_map: bool = True,
    ) -> None:
        """``update_map`` False (localisation only) leaves the map's point statistics and descriptors alone."""
        self.map = slam_map
        self.camera = camera
        self.features = features
        self.config = config
        self.relocalisation_candidates = relocalisation_candidates
        self.update_map = update_map
        self.reference_kf: int | None = None
        self.last_tracked_ids = np.zeros(0, np.int64)
        self.frames_since_keyframe = 0

    def track(
        self,
        frame: StereoFeatures,
        predicted: np.ndarray | None,
        last_pose: np.ndarray | None,
        has_velocity: bool = True,
    ) -> TrackedFrame | None:
        """Pose of ``frame`` from the predicted T_world_cam (or ``last_pose`` with a wider search), else by
        relocalisation; None when the frame is lost. Without a velocity (just after a relocalisation) the prediction
        is the last pose, so the first search is the wide one: with the narrow window a wrong but self-consistent
        set of matches can win. A tracked frame updates the map's point statistics and descriptors and the
        reference keyframe."""
        cfg = self.config
        found = None
        if predicted is not None and self.reference_kf is not None:
            radius = cfg.search_radius_px if has_velocity else 2.5 * cfg.search_radius_px
            found = self._track_local_map(frame, invert_pose(predicted), radius)
            if found is None and last_pose is not None:  # a bad prediction: search wider
                found = self._track_local_map(frame, invert_pose(last_pose), 2.5 * cfg.search_radius_px)
        relocalised = found is None
        if relocalised:
            found = self._relocalise(frame)
            if found is None:
                return None
        T_cw, kp_idx, pt_ids, visible_ids, information = found
        if self.update_map:
            with self.map.lock:
                self.map.visible_count[visible_ids] += 1
                self.map.found_count[pt_ids] += 1
                self.map.descriptors[pt_ids] = frame.frame.descriptors[kp_idx]  # S-PTAM keeps the newest descriptor
        self.last_tracked_ids = pt_ids
        self._update_reference(pt_ids)
        return TrackedFrame(invert_pose(T_cw), kp_idx, pt_ids, relocalised, information)

    def resolve_reference(self) -> int:
        """The reference keyframe, replaced by its parent if local mapping culled it (call under the map lock)."""
        assert self.reference_kf is not None
        resolved = self.map.resolve_keyframe(self.reference_kf)
        assert resolved is not None, f"reference keyframe {self.reference_kf} is not in the map"
        self.reference_kf = resolved[0]
        return self.reference_kf

    def keyframe_due(self, tracked: int) -> bool:
        """Count a tracked frame and say whether it becomes a keyframe: S-PTAM's tracked/reference ratio, too few
        tracked points, or too many frames since the last keyframe."""
        cfg = self.config
        self.frames_since_keyframe += 1
        with self.map.lock:
            ref_points = int((self.map.keyframes[self.resolve_reference()].point_ids >= 0).sum())
        return (
            tracked < cfg.keyframe_tracked_ratio * ref_points
            or tracked < cfg.keyframe_min_tracked
            or self.frames_since_keyframe >= cfg.keyframe_max_frames
        )

    def keyframe_inserted(self, keyframe_id: int) -> None:
        """A new keyframe is the reference of the next frames."""
        self.reference_kf = keyframe_id
        self.frames_since_keyframe = 0

    def _local_map(self) -> np.ndarray:
        with self.map.lock:
            reference = self.resolve_reference()
            covisible = self.map.covisible_keyframes(reference, self.config.local_map_keyframes - 1)
            kfs = [reference, *covisible]
            ids = np.concatenate([self.map.keyframes[k].point_ids for k in kfs] + [self.last_tracked_ids])
            local = np.zeros(self.map.num_points, bool)
            local[ids[ids >= 0]] = True
            return np.nonzero(local & self.map.alive)[0]

    def _track_local_map(
        self, frame: StereoFeatures, T_cw: np.ndarray, radius: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Projection search + pose refinement + a second, tighter search. Returns (T_cw, keypoint indices, point
        ids, ids of the points predicted visible, information), or None with fewer than ``min_inliers``."""
        cfg = self.config
        ids = self._local_map()
        with self.map.lock:
            positions = self.map.positions[ids].copy()
            descriptors = self.map.descriptors[ids].copy()
        tree = frame.keypoint_tree
        m = search_by_projection(
            self.camera, T_cw, positions, descriptors, frame.frame, tree, self.features, radius, max_depth=cfg.max_depth
        )
        if len(m.point_index) < cfg.min_inliers:
            return None
        estimate = self._optimize(frame, T_cw, positions[m.point_index], m.keypoint_index)
        if estimate.inliers.sum() < cfg.min_inliers:
            return None
        if cfg.refine_radius_px > 0:
            refined = search_by_projection(
                self.camera,
                estimate.T_cam_world,
                positions,
                descriptors,
                frame.frame,
                tree,
                self.features,
                cfg.refine_radius_px,
                max_depth=cfg.max_depth,
            )
            if len(refined.point_index) >= cfg.min_inliers:
                m = refined
                estimate = self._optimize(frame, estimate.T_cam_world, positions[m.point_index], m.keypoint_index)
        inlier = estimate.inliers
        if inlier.sum() < cfg.min_inliers:
            return None
        return (
            estimate.T_cam_world,
            m.keypoint_index[inlier],
            ids[m.point_index[inlier]],
            ids[m.visible],
            estimate.information,
        )

    def _optimize(
        self, frame: StereoFeatures, T_cw: np.ndarray, points: np.ndarray, kp_idx: np.ndarray
    ) -> PoseEstimate:
        meas = np.zeros((len(kp_idx), 3))
        meas[:, :2] = frame.frame.keypoints[kp_idx]
        right = frame.right_x[kp_idx]
        stereo = np.isfinite(right)
        meas[:, 2] = np.where(stereo, right, 0.0)
        return optimize_pose(self.camera, T_cw, points, meas, stereo)

    def _relocalise(
        self, frame: StereoFeatures
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Relocalise in the whole map, then track in the local map of the keyframe that placed the frame."""
        cfg = self.config
        descriptor = self.features.global_descriptor(frame.gray, frame.descriptor_image, frame.frame)
        for keyframe_id, T_cw in relocalisation_poses(
            self.map,
            self.camera,
            self.features,
            frame.frame,
            frame.right_x,
            descriptor,
            self.relocalisation_candidates,
            cfg.min_inliers,
        ):
            self.reference_kf = keyframe_id
            found = self._track_local_map(frame, T_cw, cfg.refine_radius_px or 4.0)
            if found is not None:
                return found
        return None

    def _update_reference(self, tracked_ids: np.ndarray) -> None:
        """The reference keyframe is the local keyframe that observes most of the tracked points."""
        with self.map.lock:
            reference = self.resolve_reference()
            kfs = [reference, *self.map.covisible_keyframes(reference, 5)]
            tracked = np.zeros(self.map.num_points, bool)
            tracked[tracked_ids] = True
            counts = [_count_in(self.map.keyframes[k].point_ids, tracked) for k in kfs]
        self.reference_kf = kfs[int(np.argmax(counts))]


def _count_in(point_ids: np.ndarray, mask: np.ndarray) -> int:
    """How many of ``point_ids`` (-1: none) are set in a per-point boolean mask."""
    return int(mask[point_ids[point_ids >= 0]].sum())
