"""Descriptor matching for the SLAM: stereo matching along rectified rows and best/second-best selection.

Everything is vectorised: a distance matrix from the feature type's own norm, geometric gates turned into ``inf``,
the two smallest distances per row (argmin, then the minimum without it), a ratio test, and a one-to-one
resolution that keeps the closest match of each target.
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
    rows = np.arange(n)
    best = np.argmin(distances, axis=1)
    best_d = distances[rows, best]
    if m == 1:
        return best, best_d, np.full(n, np.inf, np.float32)
    # The row minimum with the best column masked: np.partition(kth=1)'s value (a tied best stays), but an order of
    # magnitude faster on relocalisation's keypoints x local-map matrices.
    rest = distances.copy()
    rest[rows, best] = np.inf
    return best, best_d, rest.min(axis=1)


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
    src, tgt = _row_band_pairs(left.keypoints, right.keypoints, max_row_px)
    disparity = left.keypoints[src, 0] - right.keypoints[tgt, 0]
    keep = (disparity >= camera.bf / max_depth) & (disparity <= camera.bf / min_depth)
    src, tgt = src[keep], tgt[keep]
    if len(src) == 0:
        return uR
    dist = features.paired_distances(left.descriptors[src], right.descriptors[tgt])
    order = np.lexsort((tgt, dist, src))  # ties in distance go to the lower right index
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


def _row_band_pairs(left: np.ndarray, right: np.ndarray, max_row_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) index pairs of (N, 2) keypoints whose rows differ by at most ``max_row_px``.

    Right keypoints sorted by row bound each left keypoint's candidates (a few percent of all pairs), so no N x M
    matrix is built; the bounds are widened by a pixel and the pairs filtered with the exact float32 test.
    """
    order = np.argsort(right[:, 1], kind="stable")
    rows = right[order, 1]
    lo = np.searchsorted(rows, left[:, 1] - (max_row_px + 1.0), side="left")
    hi = np.searchsorted(rows, left[:, 1] + (max_row_px + 1.0), side="right")
    counts = hi - lo
    src = np.repeat(np.arange(len(left)), counts)
    # Position within each left keypoint's run of candidates, added to its first candidate.
    offsets = np.arange(len(src)) - np.repeat(np.cumsum(counts) - counts, counts)
    tgt = order[np.repeat(lo, counts) + offsets]
    close = np.abs(left[src, 1] - right[tgt, 1]) <= max_row_px
    return src[close], tgt[close]
