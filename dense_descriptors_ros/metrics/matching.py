"""Correspondence metrics on dense descriptor images: nearest-neighbour matching, PCK, SAND's AUC, HPatches MMA.

Descriptor images are float32 (H, W, D) with unit L2 norm per pixel; points are (N, 2) float arrays of
(x = column, y = row) with pixel centres at integer coordinates.
"""

from __future__ import annotations

import numpy as np
import torch

from dense_descriptors_ros.features.sampling import sample_descriptors

PCK_THRESHOLDS = (1.0, 3.0, 5.0, 10.0)
MMA_THRESHOLDS = tuple(float(t) for t in range(1, 11))
SAND_LOCAL_RADIUS = 25.0  # SAND's "local" negatives: within 25 px of the true match (papers/003 section 3.4)


def _check_descriptors(desc: np.ndarray, name: str) -> None:
    if not isinstance(desc, np.ndarray) or desc.ndim != 3:
        raise ValueError(f"{name} must be a numpy (H, W, D) descriptor image, got {getattr(desc, 'shape', type(desc))}")


def _check_points(pts: np.ndarray, name: str) -> np.ndarray:
    pts = np.asarray(pts, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{name} must be (N, 2) (x, y) points, got shape {pts.shape}")
    return pts


def nearest_neighbour_indices(queries: np.ndarray, candidates: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Index of the L2-nearest candidate (M, D) for each query (N, D), computed in chunks with torch."""
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    c = torch.from_numpy(np.ascontiguousarray(candidates, dtype=np.float32))
    if q.shape[1] != c.shape[1]:
        raise ValueError(f"descriptor sizes differ: queries D={q.shape[1]}, candidates D={c.shape[1]}")
    c_sq = (c * c).sum(1)
    out = []
    for start in range(0, len(q), chunk):
        block = q[start : start + chunk]
        # ||q - c||^2 = ||c||^2 - 2 q.c + const(q): the argmin needs no per-query term.
        out.append(torch.argmin(c_sq[None, :] - 2.0 * block @ c.T, dim=1))
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def match_nearest(desc_a: np.ndarray, desc_b: np.ndarray, pts_a: np.ndarray) -> np.ndarray:
    """For each point of image A, the pixel (x, y) of image B with the nearest descriptor (dense NN search)."""
    _check_descriptors(desc_a, "desc_a")
    _check_descriptors(desc_b, "desc_b")
    _, w, d = desc_b.shape
    idx = nearest_neighbour_indices(sample_descriptors(desc_a, pts_a), desc_b.reshape(-1, d))
    return np.stack([idx % w, idx // w], axis=1).astype(np.float64)


def mutual_nearest_mask(
    desc_a: np.ndarray, desc_b: np.ndarray, pts_a: np.ndarray, pred_b: np.ndarray, tolerance: float = 1.5
) -> np.ndarray:
    """True where the NN of pred_b back in image A lands within ``tolerance`` px of the query (cycle check)."""
    back = match_nearest(desc_b, desc_a, pred_b)
    return np.linalg.norm(back - _check_points(pts_a, "pts_a"), axis=1) <= tolerance


def pck(pred: np.ndarray, gt: np.ndarray, thresholds: tuple[float, ...] = PCK_THRESHOLDS) -> dict[str, float]:
    """Percentage of correct keypoints: share of predictions within each pixel threshold of the truth, in [0, 1]."""
    pred, gt = _check_points(pred, "pred"), _check_points(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape, got {pred.shape} and {gt.shape}")
    return pck_from_errors(np.linalg.norm(pred - gt, axis=1), thresholds)


def pck_from_errors(errors: np.ndarray, thresholds: tuple[float, ...] = PCK_THRESHOLDS) -> dict[str, float]:
    """PCK from point errors in pixels: share of errors <= each threshold."""
    errors = np.asarray(errors, dtype=np.float64).reshape(-1)
    if len(errors) == 0:
        raise ValueError("PCK needs at least one point")
    return {f"pck@{t:g}": float(np.mean(errors <= t)) for t in thresholds}


def mean_matching_accuracy(errors: np.ndarray, thresholds: tuple[float, ...] = MMA_THRESHOLDS) -> dict[str, float]:
    """HPatches MMA (D2-Net protocol): share of matches with reprojection error <= t for t = 1..10 px, and their mean.

    An empty match set scores 0 at every threshold.
    """
    errors = np.asarray(errors, dtype=np.float64).reshape(-1)
    acc = {f"mma@{t:g}": float(np.mean(errors <= t)) if len(errors) else 0.0 for t in thresholds}
    acc["mma_mean"] = float(np.mean(list(acc.values())))
    return acc


def warp_points_homography(homography: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (N, 2) points with a 3x3 homography ([x', y', 1] ~ H [x, y, 1])."""
    homography = np.asarray(homography, dtype=np.float64)
    if homography.shape != (3, 3):
        raise ValueError(f"homography must be 3x3, got {homography.shape}")
    pts = _check_points(pts, "pts")
    proj = np.column_stack([pts, np.ones(len(pts))]) @ homography.T
    return proj[:, :2] / proj[:, 2:3]


def grid_points(height: int, width: int, step: int, margin: int = 0) -> np.ndarray:
    """(N, 2) (x, y) points on a regular grid with ``step`` px spacing, ``margin`` px away from the borders."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    xs = np.arange(margin, width - margin, step)
    ys = np.arange(margin, height - margin, step)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float64)


def inside_image(pts: np.ndarray, height: int, width: int, margin: float = 0.0) -> np.ndarray:
    """Boolean mask of points inside [margin, size - 1 - margin]."""
    pts = _check_points(pts, "pts")
    return (
        (pts[:, 0] >= margin)
        & (pts[:, 0] <= width - 1 - margin)
        & (pts[:, 1] >= margin)
        & (pts[:, 1] <= height - 1 - margin)
    )


def sand_auc(
    desc_a: np.ndarray,
    desc_b: np.ndarray,
    pts_a: np.ndarray,
    pts_b: np.ndarray,
    radius: float | None = None,
    negatives_per_positive: int = 10,
    min_distance: float = 1.0,
    seed: int = 0,
) -> dict[str, float]:
    """SAND feature-space metrics (papers/003 Table 1): AUC, mu+ and mu-.

    AUC is the probability that a random negative is farther (in descriptor L2) from the query than its true match
    (ties count one half), in percent. Negatives are pixels of image B at least ``min_distance`` px from the true
    match: anywhere in the image when ``radius`` is None ("global"), within ``radius`` px otherwise ("local",
    SAND uses 25 px). mu+ is the mean positive distance, mu- the mean negative distance. Negatives are drawn
    uniformly in the Euclidean annulus (SAND's code uses per-axis shifts; stated here as our choice).
    """
    pts_a, pts_b = _check_points(pts_a, "pts_a"), _check_points(pts_b, "pts_b")
    if len(pts_a) != len(pts_b) or len(pts_a) == 0:
        raise ValueError(f"need the same non-zero number of points, got {len(pts_a)} and {len(pts_b)}")
    if negatives_per_positive < 1:
        raise ValueError(f"negatives_per_positive must be >= 1, got {negatives_per_positive}")
    _check_descriptors(desc_b, "desc_b")
    h, w = desc_b.shape[:2]
    rng = np.random.default_rng(seed)
    fa = sample_descriptors(desc_a, pts_a)
    fb = sample_descriptors(desc_b, pts_b)
    d_pos = np.linalg.norm(fa - fb, axis=1)
    negatives = _sample_negatives(pts_b, h, w, radius, negatives_per_positive, min_distance, rng)
    fn = desc_b[negatives[..., 1], negatives[..., 0]]  # (N, K, D)
    d_neg = np.linalg.norm(fa[:, None, :] - fn, axis=2)
    auc = np.mean((d_neg > d_pos[:, None]) + 0.5 * (d_neg == d_pos[:, None]))
    return {"auc": float(100.0 * auc), "mu_pos": float(d_pos.mean()), "mu_neg": float(d_neg.mean())}


def _sample_negatives(
    centres: np.ndarray, h: int, w: int, radius: float | None, k: int, min_distance: float, rng: np.random.Generator
) -> np.ndarray:
    """(N, K, 2) integer pixels at distance in [min_distance, radius] from each centre (rejection sampling)."""
    n = len(centres)
    out = np.zeros((n, k, 2), dtype=np.int64)
    todo = np.ones((n, k), dtype=bool)
    for _ in range(100):
        if not todo.any():
            break
        if radius is None:
            cand = np.stack([rng.integers(0, w, (n, k)), rng.integers(0, h, (n, k))], axis=-1)
        else:
            offsets = rng.uniform(-radius, radius, (n, k, 2))
            cand = np.rint(centres[:, None, :] + offsets).astype(np.int64)
        dist = np.linalg.norm(cand - centres[:, None, :], axis=-1)
        ok = (
            (dist >= min_distance) & (cand[..., 0] >= 0) & (cand[..., 0] < w) & (cand[..., 1] >= 0) & (cand[..., 1] < h)
        )
        if radius is not None:
            ok &= dist <= radius
        take = todo & ok
        out[take] = cand[take]
        todo &= ~take
    if todo.any():
        raise ValueError("could not sample negatives: the image is too small for the requested radius / min_distance")
    return out


def flow_correspondences(
    flow: np.ndarray, valid: np.ndarray | None = None, step: int = 1, margin: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth matches from a forward flow (H, W, 2): pixels p of frame 1 and p + flow(p) in frame 2.

    Only pixels on a ``step`` grid, where ``valid`` is True and whose target lies inside the image, are kept.
    """
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got {flow.shape}")
    h, w = flow.shape[:2]
    pts = grid_points(h, w, step)
    xi, yi = pts[:, 0].astype(int), pts[:, 1].astype(int)
    target = pts + flow[yi, xi]
    keep = inside_image(target, h, w, margin) & np.isfinite(target).all(1)
    if valid is not None:
        if valid.shape != (h, w):
            raise ValueError(f"valid mask must be {(h, w)}, got {valid.shape}")
        keep &= valid[yi, xi].astype(bool)
    return pts[keep], target[keep]
