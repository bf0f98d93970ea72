"""Loop closure: candidate keyframes from global-descriptor retrieval, PnP RANSAC verification (both in
relocalisation.py) and an SE(3) pose-graph correction (pose_graph.py, GTSAM).

It runs in the mapping thread (local_mapping.py), never on the tracking thread. Candidates are old keyframes similar
to a new keyframe that share no points with it. Verification matches the new keyframe's descriptors to the
candidate's local map and runs cv2.solvePnPRansac. The correction optimises a pose graph over all keyframes
(consecutive keyframes linked by their current relative pose, plus every loop constraint so far) in the solver's
worker process. The result is a :class:`LoopCorrection` that the tracking thread applies between two frames
(:func:`apply_loop_correction`): keyframes move with their pose-graph correction (keyframes made while it was solved
move with the newest one), every map point moves with its reference keyframe, and the query keyframe is linked to
the old points it matched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.se3 import invert_pose
from dense_descriptors_ros.slam.features import FeatureType
from dense_descriptors_ros.slam.map import SlamMap
from dense_descriptors_ros.slam.pose_graph import PoseGraphEdge
from dense_descriptors_ros.slam.relocalisation import localise_against, retrieve_keyframes
from dense_descriptors_ros.slam.solver_process import Solver


@dataclass
class LoopClosureConfig:
    """Loop detection, verification and correction."""

    enabled: bool = field(default=True, metadata={"help": "detect loops and correct the map with a pose graph"})
    min_keyframe_gap: int = field(
        default=15, metadata={"help": "candidates are at least this many keyframes older", "range": (1, 10000)}
    )
    min_similarity: float = field(
        default=0.8, metadata={"help": "global-descriptor cosine similarity a candidate needs", "range": (-1.0, 1.0)}
    )
    candidates: int = field(default=3, metadata={"help": "candidates verified per keyframe", "range": (1, 20)})
    min_inliers: int = field(default=25, metadata={"help": "PnP inliers to accept a loop", "range": (6, 10000)})
    min_inlier_ratio: float = field(
        default=0.5, metadata={"help": "PnP inliers / descriptor matches to accept a loop", "range": (0.0, 1.0)}
    )
    max_correction_m: float = field(
        default=10.0, metadata={"help": "reject loops that would move the keyframe further", "range": (0.0, 1e6)}
    )


@dataclass
class LoopClosureEvent:
    query_keyframe: int
    match_keyframe: int
    inliers: int
    correction_m: float  # how far the query keyframe moved
    pose_graph_ms: float  # solving the pose graph (in the mapping thread)


@dataclass
class LoopCorrection:
    """A solved pose graph waiting to be applied to the map (:func:`apply_loop_correction`)."""

    event: LoopClosureEvent
    poses_before: dict[int, np.ndarray]  # T_world_kf of every keyframe in the graph, when it was built
    poses_after: dict[int, np.ndarray]
    newest_keyframe: int  # keyframes made after the graph was built move with this one
    fuse_keypoints: np.ndarray  # keypoints of the query keyframe ...
    fuse_point_ids: np.ndarray  # ... and the old map points they matched


class LoopCloser:
    """Detects loops at new keyframes and solves the pose graph that closes them (in the mapping thread)."""

    def __init__(
        self, slam_map: SlamMap, camera: StereoCamera, features: FeatureType, config: LoopClosureConfig | None = None
    ) -> None:
        self.map = slam_map
        self.camera = camera
        self.features = features
        self.config = config or LoopClosureConfig()
        self.loop_edges: list[tuple[int, int, np.ndarray]] = []  # (old kf, new kf, T_old_new)
        self.events: list[LoopClosureEvent] = []

    def loop_keyframes(self) -> set[int]:
        """Keyframes at either end of a loop constraint (never culled: the pose graph needs them)."""
        return {k for a, b, _ in self.loop_edges for k in (a, b)}

    def check(self, keyframe_id: int, solver: Solver) -> LoopCorrection | None:
        """Try to close a loop at a keyframe; on success the pose graph is solved and the correction returned."""
        cfg = self.config
        with self.map.lock:
            keyframe = self.map.keyframes.get(keyframe_id)
            if not cfg.enabled or keyframe is None or len(keyframe.global_descriptor) == 0:
                return None
            keypoints, descriptors, right_x = keyframe.keypoints, keyframe.descriptors, keyframe.right_x
            T_world_kf = keyframe.T_world_cam.copy()
            # Keyframes already linked to the query through shared points are no new loop (e.g. just after one).
            connected = set(self.map.covisible_keyframes(keyframe_id, 1000))
        cutoff = keyframe_id - cfg.min_keyframe_gap
        if cutoff < 0:
            return None
        for cand, sim in retrieve_keyframes(self.map, keyframe.global_descriptor, cutoff, cfg.candidates):
            if sim < cfg.min_similarity:
                break
            if cand in connected:
                continue
            T_cw, inliers, matches, kp_index, point_ids = localise_against(
                self.map, self.camera, self.features, keypoints, descriptors, right_x, cand
            )
            if T_cw is None or inliers < cfg.min_inliers or inliers < cfg.min_inlier_ratio * matches:
                continue
            T_world_query = invert_pose(T_cw)
            moved = float(np.linalg.norm(T_world_query[:3, 3] - T_world_kf[:3, 3]))
            if moved > cfg.max_correction_m:
                continue
            with self.map.lock:
                if cand not in self.map.keyframes:  # culled meanwhile
                    continue
                T_old = self.map.keyframes[cand].T_world_cam.copy()
            self.loop_edges.append((cand, keyframe_id, invert_pose(T_old) @ T_world_query))
            start = time.perf_counter()
            before, after = self._solve(solver)
            event = LoopClosureEvent(keyframe_id, cand, inliers, moved, 1e3 * (time.perf_counter() - start))
            self.events.append(event)
            return LoopCorrection(event, before, after, max(before), kp_index, point_ids)
        return None

    def _solve(self, solver: Solver) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        """Pose graph over all keyframes with every loop edge: (poses before, poses after) by keyframe id."""
        with self.map.lock:
            ids = self.map.keyframe_ids()
            poses = np.array([self.map.keyframes[k].T_world_cam for k in ids])
        index = {k: i for i, k in enumerate(ids)}
        edges = [PoseGraphEdge(i, i + 1, invert_pose(poses[i]) @ poses[i + 1]) for i in range(len(ids) - 1)]
        edges += [PoseGraphEdge(index[a], index[b], Z) for a, b, Z in self.loop_edges if a in index and b in index]
        new_poses = solver.pose_graph(poses, edges, 0)
        return dict(zip(ids, poses, strict=True)), dict(zip(ids, new_poses, strict=True))


def apply_loop_correction(slam_map: SlamMap, correction: LoopCorrection) -> dict[int, np.ndarray]:
    """Move keyframes and points by a solved pose graph; returns each keyframe's correction T_new @ T_old^-1."""
    newest = correction.newest_keyframe
    C_newest = correction.poses_after[newest] @ invert_pose(correction.poses_before[newest])
    with slam_map.lock:
        corrections = {}
        for k, kf in slam_map.keyframes.items():
            if k in correction.poses_before:
                C = correction.poses_after[k] @ invert_pose(correction.poses_before[k])
            else:
                C = C_newest
            # Composed with the current pose, so a BA that moved the keyframe meanwhile is kept.
            kf.T_world_cam = C @ kf.T_world_cam
            corrections[k] = C
        alive = slam_map.alive_ids()
        refs, inverse = np.unique(slam_map.reference_keyframe[alive], return_inverse=True)
        C_points = np.array([corrections.get(int(k), C_newest) for k in refs]).reshape(-1, 4, 4)[inverse]
        positions = slam_map.positions[alive]
        slam_map.positions[alive] = np.einsum("nij,nj->ni", C_points[:, :3, :3], positions) + C_points[:, :3, 3]
        # Fuse: the query keyframe now observes the old points it matched, so tracking continues on the old map and
        # BA sees the loop.
        query = correction.event.query_keyframe
        keep = slam_map.alive[correction.fuse_point_ids]
        if query in slam_map.keyframes and keep.any():
            slam_map.add_observations(query, correction.fuse_keypoints[keep], correction.fuse_point_ids[keep])
        slam_map.version += 1
    return corrections
