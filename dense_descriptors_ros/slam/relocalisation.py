"""Relocalisation and place recognition: keyframe retrieval by a pooled global descriptor, then descriptor matching
against the keyframe's local map, PnP RANSAC and pose-only refinement.

Retrieval needs no vocabulary (a DBoW vocabulary is tied to one binary descriptor, so it would have to be re-trained
for every learned model): each keyframe stores the feature type's global descriptor (for learned features the
normalised grid-pooled dense descriptor map), candidates are the most similar keyframes by dot product. A lost
tracker relocalises with :func:`relocalisation_poses`; loop closure verifies its candidates with
:func:`localise_against`.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.slam.features import FeatureType, FrameFeatures
from dense_descriptors_ros.slam.map import SlamMap
from dense_descriptors_ros.slam.pose_optimisation import optimize_pose
from dense_descriptors_ros.slam.stereo_matching import accept_matches, best_two, unique_targets


def retrieve_keyframes(
    slam_map: SlamMap, descriptor: np.ndarray, exclude_after: int | None, top_k: int
) -> list[tuple[int, float]]:
    """The ``top_k`` keyframes most similar to ``descriptor`` (id, cosine), optionally only ids <= exclude_after."""
    with slam_map.lock:
        kfs = [
            kf
            for kf in slam_map.keyframes.values()
            if len(kf.global_descriptor) and (exclude_after is None or kf.id <= exclude_after)
        ]
        if not kfs:
            return []
        sims = np.array([kf.global_descriptor for kf in kfs]) @ descriptor
    order = np.argsort(-sims, kind="stable")[:top_k]
    return [(kfs[i].id, float(sims[i])) for i in order]


def local_map_of(slam_map: SlamMap, keyframe_id: int, covisible: int = 5) -> np.ndarray:
    """Alive point ids seen by a keyframe and its most covisible keyframes."""
    with slam_map.lock:
        ids = [keyframe_id, *slam_map.covisible_keyframes(keyframe_id, covisible)]
        pts = np.concatenate([slam_map.keyframes[k].point_ids for k in ids])
        pts = np.unique(pts[pts >= 0])
        return pts[slam_map.alive[pts]]


def localise_against(
    slam_map: SlamMap,
    camera: StereoCamera,
    features: FeatureType,
    keypoints: np.ndarray,
    descriptors: np.ndarray,
    right_x: np.ndarray,
    candidate_kf: int,
) -> tuple[np.ndarray | None, int, int, np.ndarray, np.ndarray]:
    """PnP RANSAC + pose-only refinement of a frame against a keyframe's local map.

    Returns (T_cam_world or None, inliers, descriptor matches, matched keypoint indices, matched point ids).
    """
    pts = local_map_of(slam_map, candidate_kf)
    with slam_map.lock:
        positions = slam_map.positions[pts].copy()
        point_desc = slam_map.descriptors[pts].copy()
    q, t = match_descriptors(features, descriptors, point_desc)
    T, inlier = pnp_ransac(camera, positions[t], keypoints[q])
    if T is None:
        return None, 0, len(q), q, pts[t]
    meas = np.zeros((len(q), 3))
    meas[:, :2] = keypoints[q]
    meas[:, 2] = np.nan_to_num(right_x[q])
    stereo = np.isfinite(right_x[q])
    estimate = optimize_pose(camera, T, positions[t], meas, stereo)
    inlier = estimate.inliers
    return estimate.T_cam_world, int(inlier.sum()), len(q), q[inlier], pts[t][inlier]


def relocalisation_poses(
    slam_map: SlamMap,
    camera: StereoCamera,
    features: FeatureType,
    frame: FrameFeatures,
    right_x: np.ndarray,
    global_descriptor: np.ndarray,
    candidates: int,
    min_inliers: int,
) -> Iterator[tuple[int, np.ndarray]]:
    """(keyframe id, T_cam_world) of the frame for each of the ``candidates`` keyframes most similar to it (best
    first) whose local map localises it with at least ``min_inliers`` inliers; lazily, so callers stop at the first
    pose they accept."""
    for candidate, _ in retrieve_keyframes(slam_map, global_descriptor, None, candidates):
        T_cw, inliers, _, _, _ = localise_against(
            slam_map, camera, features, frame.keypoints, frame.descriptors, right_x, candidate
        )
        if T_cw is not None and inliers >= min_inliers:
            yield candidate, T_cw


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
