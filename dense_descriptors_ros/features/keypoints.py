"""Choosing points on a descriptor image: where descriptors are distinctive, spread evenly over a grid.

:func:`distinctiveness_map` scores every pixel by how different its descriptor is from its surroundings (what the
tracker's automatic queries and the SLAM's saliency keypoints are taken from); :func:`grid_spread` keeps the best
points of every grid cell first, so the chosen points cover the image instead of clumping on its most textured part.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from dense_descriptors_ros.features.descriptor_image import as_descriptor_tensor, smooth_descriptors
from dense_descriptors_ros.features.distance import descriptor_distance


def distinctiveness_map(chw: torch.Tensor, radius: int) -> torch.Tensor:
    """(H, W) smallest descriptor distance from each pixel to its 8 neighbours at ``radius`` pixels.

    High on descriptor-space corners (different from the surroundings in every direction), low in flat regions
    and along edges. Border pixels whose neighbours fall outside the image get 0.
    """
    _, h, w = chw.shape
    padded = F.pad(chw[None], (radius, radius, radius, radius), mode="replicate")[0]
    result = torch.full((h, w), 4.0, device=chw.device)
    for dy in (-radius, 0, radius):
        for dx in (-radius, 0, radius):
            if dx == 0 and dy == 0:
                continue
            shifted = padded[:, radius + dy : radius + dy + h, radius + dx : radius + dx + w]
            result = torch.minimum(result, descriptor_distance((chw * shifted).sum(0)))
    result[:radius] = 0.0
    result[h - radius :] = 0.0
    result[:, :radius] = 0.0
    result[:, w - radius :] = 0.0
    return result


def grid_cells(points: np.ndarray, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Cell index (row-major) of each (x, y) point in a grid of ``cells`` x ``cells`` over an image of ``shape``."""
    h, w = shape
    cx = np.minimum((points[:, 0] * cells / w).astype(int), cells - 1)
    cy = np.minimum((points[:, 1] * cells / h).astype(int), cells - 1)
    return cy * cells + cx


def grid_spread(scores: np.ndarray, cells: np.ndarray, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` points, taken round robin over their grid ``cells``, best score first.

    Every cell's best point comes before any cell's second best (even coverage); within a round, higher scores
    come first.
    """
    if len(scores) <= limit:
        return np.argsort(-scores, kind="stable")
    order = np.lexsort((-scores, cells))
    sorted_cell = cells[order]
    first = np.searchsorted(sorted_cell, sorted_cell, side="left")
    rank = np.arange(len(order)) - first  # 0 for each cell's best point, 1 for its second best, ...
    key = rank.astype(np.float64) * 1e6 - scores[order] / (np.abs(scores).max() + 1e-12)
    return order[np.argsort(key, kind="stable")[:limit]]


def select_distinctive_points(
    descriptors: np.ndarray | torch.Tensor,
    count: int,
    mask: np.ndarray | None = None,
    patch_size: int = 5,
    radius: int = 4,
) -> np.ndarray:
    """``count`` distinctive points (float32 (N, 2) x, y), at most one per cell of a grid over the image or mask.

    Distinctiveness is :func:`distinctiveness_map` of the patch-smoothed descriptors. The grid has about 2 ``count``
    cells over the mask (or image) so the points spread out; each cell offers its best pixel away from the cell
    border (so points of neighbouring cells are at least half a cell apart) and cells are taken best first.
    Fewer points come back when the mask has too few distinctive pixels.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    chw = smooth_descriptors(as_descriptor_tensor(descriptors), patch_size)
    _, h, w = chw.shape
    score = distinctiveness_map(chw, radius)
    area = h * w
    if mask is not None:
        mask = np.asarray(mask).astype(bool)
        if mask.shape != (h, w):
            raise ValueError(f"mask must have the descriptor image's size {(h, w)}, got {mask.shape}")
        score = score.masked_fill(~torch.from_numpy(mask).to(score.device), -1.0)
        area = int(mask.sum())
    cell = max(1, int(math.sqrt(area / (2 * count))))  # twice as many cells as points: border cells are partial
    margin = cell // 4
    if margin:
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        inner = ((ys % cell) >= margin) & ((ys % cell) < cell - margin) & ((xs % cell) >= margin)
        inner &= (xs % cell) < cell - margin
        score = score.masked_fill(~inner.to(score.device), -1.0)
    gh, gw = math.ceil(h / cell), math.ceil(w / cell)
    padded = F.pad(score[None, None], (0, gw * cell - w, 0, gh * cell - h), value=-1.0)
    best, index = F.max_pool2d(padded, cell, return_indices=True)
    best, index = best.reshape(-1).cpu().numpy(), index.reshape(-1).cpu().numpy()
    offered = np.flatnonzero(best > 0)  # one candidate per cell: the spread takes cells best first
    flat = index[offered[grid_spread(best[offered].astype(np.float64), offered, count)]]
    padded_w = gw * cell
    return np.stack([flat % padded_w, flat // padded_w], axis=1).astype(np.float32)
