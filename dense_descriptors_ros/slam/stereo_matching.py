"""Descriptor matching for the SLAM: stereo matching along rectified rows and best/second-best selection.

Everything is vectorised: a distance matrix from the feature type's own norm, geometric gates turned into ``inf``,
the two smallest distances per row by ``np.partition``, a ratio test, and a one-to-one resolution that keeps the
closest match of each target.
"""

from __future__ import annotations

import numpy as np

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.slam.features import FeatureType, FrameFeatures


def best_two(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of an (N, M) distance matrix: index of the best column, best and second-best distance."""
    n, m = distances.shape
    if m == 0:
        inf = np.full(n, np.inf, np.float32)
        return np.full(n, -1), inf, inf
    best = np.argmin(distances, axis=1)
    best_d = distances[np.arange(n), best]
    if m == 1:
        return best, best_d, np.full(n, np.inf, np.float32)
    second_d = np.partition(distances, 1, axis=1)[:, 1]
    return best, best_d, second_d


def accept_matches(best_d: np.ndarray, second_d: np.ndarray, max_distance: float, ratio: float) -> np.ndarray:
    """Boolean mask: the best distance is finite, under the threshold and passes the ratio test."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(best_d) & (best_d <= max_distance) & (best_d <= ratio * second_d)


def unique_targets(source: np.ndarray, target: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Indices (into the match arrays) that keep, for every target, only its closest source."""
    order = np.lexsort((dist, target))
    first = np.ones(len(order), bool)
    first[1:] = target[order][1:] != target[order][:-1]
    return np.sort(order[first])


def match_stereo_rows(
    left: FrameFeatures,
    right: FrameFeatures,
    features: FeatureType,
    camera: StereoCamera,
    max_row_px: float = 1.5,
    min_depth: float = 0.1,
    max_depth: float = 60.0,
) -> np.ndarray:
    """Match left keypoints to right keypoints on the same rectified row.

    Returns (N_left,) float64 right-image columns uR (NaN where no match): candidates lie within ``max_row_px``
    rows and have a disparity in [bf / max_depth, bf / min_depth]; the best must pass the feature type's
    distance threshold and ratio test, and each right keypoint is used at most once.
    """
    uR = np.full(len(left), np.nan)
    if len(left) == 0 or len(right) == 0:
        return uR
    if min_depth <= 0 or max_depth <= min_depth:
        raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth}, {max_depth}")
    dy = np.abs(left.keypoints[:, None, 1] - right.keypoints[None, :, 1])
    disparity = left.keypoints[:, None, 0] - right.keypoints[None, :, 0]
    valid = (dy <= max_row_px) & (disparity >= camera.bf / max_depth) & (disparity <= camera.bf / min_depth)
    # Score only the pairs inside the band: a few percent of all pairs.
    src, tgt = np.nonzero(valid)
    if len(src) == 0:
        return uR
    dist = features.paired_distances(left.descriptors[src], right.descriptors[tgt])
    order = np.lexsort((dist, src))
    src, tgt, dist = src[order], tgt[order], dist[order]
    first = np.ones(len(src), bool)
    first[1:] = src[1:] != src[:-1]
    has_second = np.zeros(len(src), bool)
    has_second[:-1] = first[:-1] & ~first[1:]
    best = np.nonzero(first)[0]
    second_d = np.full(len(best), np.inf, np.float32)
    second_d[has_second[best]] = dist[best[has_second[best]] + 1]
    ok = accept_matches(dist[best], second_d, features.max_distance, features.ratio)
    s, t, d = src[best[ok]], tgt[best[ok]], dist[best[ok]]
    keep = unique_targets(s, t, d)
    uR[s[keep]] = right.keypoints[t[keep], 0]
    return uR
