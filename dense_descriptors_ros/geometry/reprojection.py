"""Where pixels of one depth image are in another view: back-project with depth, move rigidly, project, and keep only
points the other view really sees (its depth agrees). These are the 3D-consistent correspondences papers/000 trains
on (RGB-D + camera poses), exact over any baseline where the depth and the poses are.

Pixels are (x, y) with pixel centres at integers; camera frames are optical (z forward); depth is metres along z,
0 or non-finite where unknown.
"""

from __future__ import annotations

import numpy as np


def _nearest(points: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns of the pixel nearest each (x, y) point (clipped), and whether the point lies on the image."""
    cols = np.rint(points[:, 0])
    rows = np.rint(points[:, 1])
    inside = np.isfinite(points).all(1) & (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    cols = np.clip(np.nan_to_num(cols), 0, width - 1).astype(np.int64)
    rows = np.clip(np.nan_to_num(rows), 0, height - 1).astype(np.int64)
    return rows, cols, inside


def reproject_pixels(
    points_a: np.ndarray,
    depth_a: np.ndarray,
    depth_b: np.ndarray,
    K: np.ndarray,
    T_b_a: np.ndarray,
    usable_a: np.ndarray | None = None,
    usable_b: np.ndarray | None = None,
    depth_tolerance: float = 0.02,
) -> tuple[np.ndarray, np.ndarray]:
    """Points (M, 2) of view a in view b, and whether view b sees each of them.

    ``depth_a`` / ``depth_b`` (H, W) and the pinhole ``K`` (3, 3) are of both views; ``T_b_a`` (4, 4) takes points
    from camera a's frame to camera b's. A point is seen when it has depth in a (at its nearest pixel, which
    ``usable_a`` allows), lands in front of camera b on its image, and its depth there agrees with ``depth_b``
    within ``depth_tolerance`` relative (else something hides it) on a pixel ``usable_b`` allows. ``usable_*`` (H, W)
    bool mark the pixels that move with the poses (for an object-centric capture: the object's pixels).
    Returns points_b (M, 2) float64 (nan where not seen) and seen (M,) bool.
    """
    points_a = np.asarray(points_a, np.float64).reshape(-1, 2)
    if depth_a.shape != depth_b.shape or depth_a.ndim != 2:
        raise ValueError(f"depth images must be (H, W) and alike, got {depth_a.shape} and {depth_b.shape}")
    height, width = depth_a.shape
    rows, cols, inside = _nearest(points_a, width, height)
    z_a = np.where(inside, depth_a[rows, cols], np.nan)
    ok = inside & np.isfinite(z_a) & (z_a > 0)
    if usable_a is not None:
        ok &= usable_a[rows, cols]
    rays = np.column_stack([points_a, np.ones(len(points_a))]) @ np.linalg.inv(K).T
    cam_b = (rays * np.where(ok, z_a, 0.0)[:, None]) @ T_b_a[:3, :3].T + T_b_a[:3, 3]
    ok &= cam_b[:, 2] > 1e-9
    proj = cam_b @ np.asarray(K, np.float64).T
    points_b = proj[:, :2] / np.where(ok, proj[:, 2], 1.0)[:, None]
    rows_b, cols_b, inside_b = _nearest(np.where(ok[:, None], points_b, np.nan), width, height)
    z_b = depth_b[rows_b, cols_b]
    with np.errstate(invalid="ignore"):
        ok &= inside_b & np.isfinite(z_b) & (np.abs(cam_b[:, 2] - z_b) <= depth_tolerance * z_b)
    if usable_b is not None:
        ok &= usable_b[rows_b, cols_b]
    return np.where(ok[:, None], points_b, np.nan), ok
