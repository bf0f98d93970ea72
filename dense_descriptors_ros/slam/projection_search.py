"""Projection search (S-PTAM's ``FindMatch``): map points matched to the frame keypoints near their projection.

Every point is projected with the given pose; its candidates are the frame keypoints within ``radius`` pixels (a
cKDTree k-nearest query, so the whole search is one vectorised call); the best candidate by the feature type's
distance must pass the threshold and the best/second-best ratio test; each keypoint keeps only its closest point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.se3 import transform_points
from dense_descriptors_ros.slam.features import FeatureType, FrameFeatures
from dense_descriptors_ros.slam.stereo_matching import accept_matches, best_two, unique_targets


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
    pc = transform_points(T_cam_world, points_world)
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
    # Descriptor distances of the candidates within the radius only (about a third of the k slots on EuRoC).
    cand, slot = np.nonzero(valid)
    desc_dist = np.full(valid.shape, np.inf, np.float32)
    desc_dist[cand, slot] = features.paired_distances(
        point_descriptors[vis_idx[cand]], frame.descriptors[kp_idx[cand, slot]]
    )
    best, best_d, second_d = best_two(desc_dist)
    ok = accept_matches(best_d, second_d, features.max_distance, features.ratio)
    rows = np.nonzero(ok)[0]
    src, tgt, d = vis_idx[rows], safe_idx[rows, best[rows]], best_d[rows]
    keep = unique_targets(src, tgt, d)
    return ProjectionMatches(src[keep], tgt[keep], visible)
