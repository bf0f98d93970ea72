"""TAP-Vid point tracking metrics: position accuracy delta_avg, occlusion accuracy and average Jaccard.

Follows TAP-Vid's ``compute_tapvid_metrics`` for one video: thresholds 1, 2, 4, 8, 16 px; only frames after the
query frame are scored ('first' query mode) or every frame but the query frame ('strided').
"""

from __future__ import annotations

import numpy as np

TAPVID_THRESHOLDS = (1.0, 2.0, 4.0, 8.0, 16.0)
QUERY_MODES = ("first", "strided")


def tapvid_metrics(
    gt_tracks: np.ndarray,
    gt_occluded: np.ndarray,
    pred_tracks: np.ndarray,
    pred_occluded: np.ndarray,
    query_frames: np.ndarray,
    query_mode: str = "first",
    thresholds: tuple[float, ...] = TAPVID_THRESHOLDS,
) -> dict[str, float]:
    """TAP-Vid metrics of N tracks over T frames.

    gt_tracks, pred_tracks: (N, T, 2) (x, y) px; gt_occluded, pred_occluded: (N, T) bool; query_frames: (N,).
    Returns occlusion_accuracy, pts_within_<t> and jaccard_<t> per threshold, delta_avg and average_jaccard.
    """
    gt_tracks, pred_tracks = np.asarray(gt_tracks, float), np.asarray(pred_tracks, float)
    gt_occ, pred_occ = np.asarray(gt_occluded, bool), np.asarray(pred_occluded, bool)
    if gt_tracks.ndim != 3 or gt_tracks.shape[2] != 2 or gt_tracks.shape != pred_tracks.shape:
        raise ValueError(f"tracks must both be (N, T, 2), got {gt_tracks.shape} and {pred_tracks.shape}")
    if gt_occ.shape != gt_tracks.shape[:2] or pred_occ.shape != gt_occ.shape:
        raise ValueError(f"occlusion flags must be {gt_tracks.shape[:2]}, got {gt_occ.shape} and {pred_occ.shape}")
    if query_mode not in QUERY_MODES:
        raise ValueError(f"query_mode must be one of {QUERY_MODES}, got {query_mode!r}")
    n, t = gt_occ.shape
    query_frames = np.asarray(query_frames, int).reshape(-1)
    if len(query_frames) != n:
        raise ValueError(f"{len(query_frames)} query frames for {n} tracks")
    frames = np.arange(t)[None, :]
    evaluated = frames > query_frames[:, None] if query_mode == "first" else frames != query_frames[:, None]
    if not evaluated.any():
        raise ValueError("no frame to evaluate: every query is on the last frame")
    visible, pred_visible = ~gt_occ, ~pred_occ
    out = {"occlusion_accuracy": float(np.sum((pred_occ == gt_occ) & evaluated) / np.sum(evaluated))}
    distances = np.linalg.norm(pred_tracks - gt_tracks, axis=-1)
    within_all, jaccard_all = [], []
    for thr in thresholds:
        within = distances < thr
        correct = within & visible
        denom = np.sum(visible & evaluated)
        frac = np.sum(correct & evaluated) / denom if denom else 0.0
        true_pos = np.sum(correct & pred_visible & evaluated)
        false_pos = np.sum(((~visible & pred_visible) | (~correct & pred_visible)) & evaluated)
        gt_pos = np.sum(visible & evaluated)
        jaccard = true_pos / (gt_pos + false_pos) if gt_pos + false_pos else 0.0
        out[f"pts_within_{thr:g}"] = float(frac)
        out[f"jaccard_{thr:g}"] = float(jaccard)
        within_all.append(frac)
        jaccard_all.append(jaccard)
    out["delta_avg"] = float(np.mean(within_all))
    out["average_jaccard"] = float(np.mean(jaccard_all))
    return out
