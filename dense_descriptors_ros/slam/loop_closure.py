"""Loop closure: candidate keyframes from global-descriptor retrieval, PnP RANSAC verification (both in
relocalisation.py) and SE(3) pose-graph correction.

Candidates are old keyframes similar to the new keyframe that share no points with it. Verification matches the new
keyframe's descriptors to the candidate's local map and runs cv2.solvePnPRansac. The correction optimises a pose
graph over all keyframes (odometry edges between consecutive keyframes from their current relative poses, plus the
loop edge) with scipy ``least_squares`` and moves every map point with the correction of the keyframe that created
it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.optimize import least_squares

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.se3 import invert_pose, se3_exp, se3_log
from dense_descriptors_ros.slam.features import FeatureType
from dense_descriptors_ros.slam.map import KeyFrame, SlamMap
from dense_descriptors_ros.slam.relocalisation import localise_against, retrieve_keyframes


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


def optimize_pose_graph(
    poses: np.ndarray, edges: list[tuple[int, int, np.ndarray, float]], fixed: int = 0
) -> np.ndarray:
    """SE(3) pose graph: poses (N, 4, 4) T_world_i, edges (i, j, T_i_j measured, weight); node ``fixed`` held.

    Residual of an edge: log(T_i_j^-1 T_world_i^-1 T_world_j) scaled by its weight; each pose is parametrised as
    exp(xi) @ T_world_i. Solved with scipy least_squares (trf, sparse Jacobian pattern).
    """
    n = len(poses)
    free = [k for k in range(n) if k != fixed]
    slot = np.full(n, -1)
    slot[free] = np.arange(len(free))
    ii = np.array([e[0] for e in edges])
    jj = np.array([e[1] for e in edges])
    Z_inv = invert_pose(np.array([e[2] for e in edges]))
    weights = np.array([e[3] for e in edges])[:, None]

    def current(x: np.ndarray) -> np.ndarray:
        out = poses.copy()
        out[free] = se3_exp(x.reshape(-1, 6)) @ poses[free]
        return out

    def residuals(x: np.ndarray) -> np.ndarray:
        P = current(x)
        return (weights * se3_log(Z_inv @ invert_pose(P[ii]) @ P[jj])).ravel()

    sparsity = sp.lil_matrix((6 * len(edges), 6 * len(free)), dtype=int)
    for e, (i, j) in enumerate(zip(ii, jj, strict=True)):
        for node in (i, j):
            if slot[node] >= 0:
                sparsity[6 * e : 6 * e + 6, 6 * slot[node] : 6 * slot[node] + 6] = 1
    result = least_squares(
        residuals, np.zeros(6 * len(free)), jac_sparsity=sparsity, method="trf", x_scale="jac", max_nfev=50
    )
    return current(result.x)


class LoopCloser:
    """Detects loops on new keyframes and corrects the map (runs on the tracking thread: loops are rare)."""

    def __init__(
        self, slam_map: SlamMap, camera: StereoCamera, features: FeatureType, config: LoopClosureConfig | None = None
    ) -> None:
        self.map = slam_map
        self.camera = camera
        self.features = features
        self.config = config or LoopClosureConfig()
        self.loop_edges: list[tuple[int, int, np.ndarray]] = []  # (old kf, new kf, T_old_new)
        self.events: list[LoopClosureEvent] = []

    def check(self, keyframe: KeyFrame) -> tuple[LoopClosureEvent, dict[int, np.ndarray]] | None:
        """Try to close a loop at ``keyframe``; on success return the event and per-keyframe corrections
        (T_world_new @ T_world_old^-1)."""
        cfg = self.config
        if not cfg.enabled or len(keyframe.global_descriptor) == 0:
            return None
        cutoff = keyframe.id - cfg.min_keyframe_gap
        if cutoff < 0:
            return None
        # Keyframes already linked to the query through shared points are no new loop (e.g. just after a closure).
        connected = set(self.map.covisible_keyframes(keyframe.id, 1000))
        for cand, sim in retrieve_keyframes(self.map, keyframe.global_descriptor, cutoff, cfg.candidates):
            if sim < cfg.min_similarity:
                break
            if cand in connected:
                continue
            T_cw, inliers, matches, kp_index, point_ids = localise_against(
                self.map,
                self.camera,
                self.features,
                keyframe.keypoints,
                keyframe.descriptors,
                keyframe.right_x,
                cand,
            )
            if T_cw is None or inliers < cfg.min_inliers or inliers < cfg.min_inlier_ratio * matches:
                continue
            T_world_query = invert_pose(T_cw)
            moved = float(np.linalg.norm(T_world_query[:3, 3] - keyframe.T_world_cam[:3, 3]))
            if moved > cfg.max_correction_m:
                continue
            with self.map.lock:
                T_old = self.map.keyframes[cand].T_world_cam
            self.loop_edges.append((cand, keyframe.id, invert_pose(T_old) @ T_world_query))
            corrections = self.correct()
            # Fuse: the query keyframe now observes the old points it matched, so tracking continues on the old
            # map and BA sees the loop.
            self.map.add_observations(keyframe.id, kp_index, point_ids)
            event = LoopClosureEvent(keyframe.id, cand, inliers, moved)
            self.events.append(event)
            return event, corrections
        return None

    def correct(self) -> dict[int, np.ndarray]:
        """Optimise the keyframe pose graph with all loop edges and move keyframes and points."""
        with self.map.lock:
            ids = self.map.keyframe_ids()
            index = {k: i for i, k in enumerate(ids)}
            poses = np.array([self.map.keyframes[k].T_world_cam for k in ids])
            edges = [(i, i + 1, invert_pose(poses[i]) @ poses[i + 1], 1.0) for i in range(len(ids) - 1)]
            edges += [(index[a], index[b], Z, 1.0) for a, b, Z in self.loop_edges if a in index and b in index]
            new_poses = optimize_pose_graph(poses, edges, fixed=0)
            corrections = {k: new_poses[i] @ invert_pose(poses[i]) for k, i in index.items()}
            for k, i in index.items():
                self.map.keyframes[k].T_world_cam = new_poses[i]
            alive = self.map.alive_ids()
            ref = self.map.reference_keyframe[alive]
            for k, C in corrections.items():
                sel = alive[ref == k]
                if len(sel):
                    self.map.positions[sel] = self.map.positions[sel] @ C[:3, :3].T + C[:3, 3]
            self.map.version += 1
        return corrections
