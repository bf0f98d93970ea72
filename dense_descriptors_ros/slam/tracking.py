"""Tracking pieces: constant-velocity prediction, projection search and PnP relocalisation.

Projection search (S-PTAM's ``FindMatch``): every local-map point is projected with the predicted pose; its
candidates are the frame keypoints within ``radius`` pixels (a cKDTree k-nearest query, so the whole search is one
vectorised call); the best candidate by the feature type's distance must pass the threshold and the
best/second-best ratio test; each keypoint keeps only its closest point.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import cKDTree

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.se3 import invert_pose, se3_exp, se3_log
from dense_descriptors_ros.slam.features import FeatureType, FrameFeatures
from dense_descriptors_ros.slam.stereo_matching import accept_matches, best_two, unique_targets


class ConstantVelocityModel:
    """Predicts the next camera pose from the last inter-frame motion, scaled by the time step."""

    def __init__(self) -> None:
        self.velocity: np.ndarray | None = None  # twist per second of T_world_cam (right-multiplied motion)
        self.last_pose: np.ndarray | None = None
        self.last_stamp: float | None = None

    def predict(self, stamp: float) -> np.ndarray | None:
        """Predicted T_world_cam at ``stamp`` (None before the first update)."""
        if self.last_pose is None:
            return None
        if self.velocity is None or self.last_stamp is None:
            return self.last_pose.copy()
        dt = stamp - self.last_stamp
        return self.last_pose @ se3_exp(self.velocity * dt)

    def update(self, stamp: float, T_world_cam: np.ndarray) -> None:
        if self.last_pose is not None and self.last_stamp is not None and stamp > self.last_stamp:
            delta = invert_pose(self.last_pose) @ T_world_cam
            self.velocity = se3_log(delta) / (stamp - self.last_stamp)
        self.last_pose, self.last_stamp = T_world_cam.copy(), stamp

    def reset(self, keep_pose: bool = False) -> None:
        self.velocity = None
        if not keep_pose:
            self.last_pose, self.last_stamp = None, None

    def apply_correction(self, T_correction: np.ndarray) -> None:
        """Move the model into a corrected world frame (loop closure): pose <- correction @ pose."""
        if self.last_pose is not None:
            self.last_pose = T_correction @ self.last_pose


@dataclass
class ProjectionMatches:
    point_index: np.ndarray  # into the searched point arrays
    keypoint_index: np.ndarray  # into the frame features
    visible: np.ndarray  # (P,) bool: the point projected inside the image in front of the camera


def search_by_projection(
    camera: StereoCamera,
    T_cam_world: np.ndarray,
    points_world: np.ndarray,
    point_descriptors: np.ndarray,
    frame: FrameFeatures,
    keypoint_tree: cKDTree,
    features: FeatureType,
    radius: float,
    candidates: int = 8,
    max_depth: float = 60.0,
) -> ProjectionMatches:
    """Match map points to frame keypoints near their projection (best/second-best test, one-to-one)."""
    empty = np.zeros(0, np.int64)
    if len(points_world) == 0 or len(frame) == 0:
        return ProjectionMatches(empty, empty, np.zeros(len(points_world), bool))
    pc = points_world @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
    front = (pc[:, 2] > 0.05) & (pc[:, 2] < max_depth)
    uv = np.full((len(pc), 2), -1e6)
    uv[front] = camera.project(pc[front])[:, :2]
    visible = front & camera.in_image(uv)
    vis_idx = np.nonzero(visible)[0]
    if len(vis_idx) == 0:
        return ProjectionMatches(empty, empty, visible)
    k = min(candidates, len(frame))
    dist_px, kp_idx = keypoint_tree.query(uv[vis_idx], k=k, distance_upper_bound=radius)
    kp_idx = np.asarray(kp_idx).reshape(len(vis_idx), k)
    dist_px = np.asarray(dist_px).reshape(len(vis_idx), k)
    valid = np.isfinite(dist_px)
    safe_idx = np.where(valid, kp_idx, 0)
    desc_dist = features.paired_distances(point_descriptors[vis_idx][:, None, :], frame.descriptors[safe_idx])
    desc_dist = np.where(valid, desc_dist, np.inf).astype(np.float32)
    best, best_d, second_d = best_two(desc_dist)
    ok = accept_matches(best_d, second_d, features.max_distance, features.ratio)
    rows = np.nonzero(ok)[0]
    src, tgt, d = vis_idx[rows], safe_idx[rows, best[rows]], best_d[rows]
    keep = unique_targets(src, tgt, d)
    return ProjectionMatches(src[keep], tgt[keep], visible)


def match_descriptors(features: FeatureType, query: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force best/second-best matching without geometry: (query indices, train indices), one-to-one."""
    if len(query) == 0 or len(train) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    best, best_d, second_d = best_two(features.distances(query, train))
    ok = np.nonzero(accept_matches(best_d, second_d, features.max_distance, features.ratio))[0]
    keep = unique_targets(ok, best[ok], best_d[ok])
    return ok[keep], best[ok][keep]


def pnp_ransac(
    camera: StereoCamera,
    points_world: np.ndarray,
    pixels: np.ndarray,
    reprojection_px: float = 3.0,
    iterations: int = 200,
    seed: int = 0,
) -> tuple[np.ndarray | None, np.ndarray]:
    """cv2.solvePnPRansac on 3D-2D matches -> (T_cam_world or None, inlier mask)."""
    inlier_mask = np.zeros(len(points_world), bool)
    if len(points_world) < 6:
        return None, inlier_mask
    cv2.setRNGSeed(seed)
    ok, rvec, tvec, inliers = cv2.solvePnPRansac(
        points_world.astype(np.float64),
        pixels.astype(np.float64),
        camera.K,
        None,
        iterationsCount=iterations,
        reprojectionError=reprojection_px,
        confidence=0.999,
        flags=cv2.SOLVEPNP_EPNP,
    )
    if not ok or inliers is None:
        return None, inlier_mask
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(rvec)[0]
    T[:3, 3] = tvec.ravel()
    inlier_mask[inliers.ravel()] = True
    return T, inlier_mask
