"""DAVIS video object segmentation metrics: J (region IoU) and F (boundary F-measure).

Follows the DAVIS evaluation code: boundaries from ``seg2bmap`` (a pixel is on the boundary when it differs from
its right, lower or lower-right neighbour), matched within a disk of radius ceil(0.008 * image diagonal);
the sequence score averages frames without the first (given) and last frame; recall is the share of frames
scoring above 0.5.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

BOUNDARY_THRESHOLD = 0.008  # fraction of the image diagonal (DAVIS default)


def _check_mask_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"expected two (H, W) masks of the same shape, got {pred.shape} and {gt.shape}")
    return pred.astype(bool), gt.astype(bool)


def region_jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """J: intersection over union of two binary masks; 1 when both are empty (DAVIS convention)."""
    pred, gt = _check_mask_pair(pred, gt)
    union = np.logical_or(pred, gt).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pred, gt).sum() / union)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary of a binary mask (DAVIS seg2bmap at the mask's own size)."""
    seg = np.asarray(mask).astype(bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2 <= radius**2).astype(np.uint8)


def boundary_f_measure(pred: np.ndarray, gt: np.ndarray, bound_th: float = BOUNDARY_THRESHOLD) -> float:
    """F: boundary precision/recall F-measure.

    The match tolerance ``bound_th`` is a fraction of the image diagonal when below 1 (0 means exact overlap),
    else a radius in pixels.
    """
    pred, gt = _check_mask_pair(pred, gt)
    radius = bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*pred.shape))
    pred_b, gt_b = boundary_map(pred), boundary_map(gt)
    disk = _disk(int(radius))
    pred_dil = cv2.dilate(pred_b.astype(np.uint8), disk).astype(bool)
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), disk).astype(bool)
    n_pred, n_gt = pred_b.sum(), gt_b.sum()
    if n_pred == 0 and n_gt == 0:
        precision = recall = 1.0
    elif n_pred == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        precision = (pred_b & gt_dil).sum() / n_pred
        recall = (gt_b & pred_dil).sum() / n_gt
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def davis_j_and_f(
    pred_masks: list[np.ndarray] | np.ndarray, gt_masks: list[np.ndarray] | np.ndarray, skip_first_last: bool = True
) -> dict[str, float]:
    """Sequence J&F: mean and recall of J and F over frames, and J&F mean = (J mean + F mean) / 2.

    ``skip_first_last`` drops the first (given) and last frame, as the DAVIS evaluation does.
    """
    if len(pred_masks) != len(gt_masks):
        raise ValueError(f"{len(pred_masks)} predicted masks for {len(gt_masks)} ground-truth masks")
    frames = range(1, len(gt_masks) - 1) if skip_first_last else range(len(gt_masks))
    if len(frames) == 0:
        raise ValueError(f"a sequence of {len(gt_masks)} frames has no frame to evaluate")
    j = np.array([region_jaccard(pred_masks[i], gt_masks[i]) for i in frames])
    f = np.array([boundary_f_measure(pred_masks[i], gt_masks[i]) for i in frames])
    return {
        "J_mean": float(j.mean()),
        "J_recall": float(np.mean(j > 0.5)),
        "F_mean": float(f.mean()),
        "F_recall": float(np.mean(f > 0.5)),
        "J&F_mean": float((j.mean() + f.mean()) / 2),
        "frames": len(j),
    }
