"""Error percentile of dense descriptors (papers/000 section 4).

For a query pixel of image a with known true match in image b: the percentage of all pixels of image b whose
descriptor is closer to the query's descriptor than the true match's descriptor is. 0 means the true match is
the nearest neighbour; 50 means chance (pixels at exactly the true match's distance
count half). The paper reports it averaged over the query pixels of an image pair.
"""

from __future__ import annotations

import numpy as np

TIE_TOLERANCE = 1e-5  # on squared distances of (roughly) unit descriptors


def _descriptors_at(desc: np.ndarray, points: np.ndarray) -> np.ndarray:
    h, w = desc.shape[:2]
    x = np.clip(np.rint(points[:, 0]).astype(np.int64), 0, w - 1)
    y = np.clip(np.rint(points[:, 1]).astype(np.int64), 0, h - 1)
    return desc[y, x]


def error_percentiles(
    desc_a: np.ndarray,
    desc_b: np.ndarray,
    pts_a: np.ndarray,
    pts_b: np.ndarray,
    chunk: int = 256,
) -> np.ndarray:
    """Per-query error percentile in [0, 100].

    desc_a, desc_b: (H, W, D) descriptor images (any norm); pts_a, pts_b: (N, 2) (x, y) true correspondences,
    looked up at the nearest pixel. Returns (N,) float64.
    """
    desc_a = np.asarray(desc_a, np.float32)
    desc_b = np.asarray(desc_b, np.float32)
    pts_a = np.asarray(pts_a, np.float64).reshape(-1, 2)
    pts_b = np.asarray(pts_b, np.float64).reshape(-1, 2)
    if desc_a.ndim != 3 or desc_b.ndim != 3 or desc_a.shape[2] != desc_b.shape[2]:
        raise ValueError(
            f"expected two (H, W, D) descriptor images with equal D, got {desc_a.shape} and {desc_b.shape}"
        )
    if pts_a.shape != pts_b.shape:
        raise ValueError(f"pts_a {pts_a.shape} and pts_b {pts_b.shape} must both be (N, 2)")
    all_b = desc_b.reshape(-1, desc_b.shape[2])
    norms_b = np.einsum("ij,ij->i", all_b, all_b)
    queries = _descriptors_at(desc_a, pts_a)
    truths = _descriptors_at(desc_b, pts_b)
    true_dist = np.sum((queries - truths) ** 2, axis=1)
    out = np.empty(len(queries))
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk]
        # Squared distances to every pixel of b: |q|^2 + |b|^2 - 2 q.b (the |q|^2 term cancels in the comparison).
        dist = norms_b[None, :] - 2.0 * (q @ all_b.T)
        threshold = true_dist[start : start + chunk] - np.einsum("ij,ij->i", q, q)
        # Ties count half (like a random pick among equals), so a constant descriptor scores chance (50), not 0;
        # the true match itself is always tied with itself and is taken out. The tolerance absorbs float error.
        gap = dist - threshold[:, None]
        closer = np.sum(gap < -TIE_TOLERANCE, axis=1)
        tied = np.sum(np.abs(gap) <= TIE_TOLERANCE, axis=1)
        out[start : start + chunk] = (closer + 0.5 * np.maximum(tied - 1, 0)) / len(all_b)
    return 100.0 * out


def mean_error_percentile(desc_a: np.ndarray, desc_b: np.ndarray, pts_a: np.ndarray, pts_b: np.ndarray) -> float:
    """The mean of ``error_percentiles`` over the queries (NaN when there are none)."""
    values = error_percentiles(desc_a, desc_b, pts_a, pts_b)
    return float(values.mean()) if values.size else float("nan")
