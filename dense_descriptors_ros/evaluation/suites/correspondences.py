"""Correspondence figures shared by the image-pair suites (HPatches, Sintel): PCK, MMA, SAND AUC, error percentile.

Every method matches the same query points by dense nearest neighbour on the same shrunk images.
"""

from __future__ import annotations

import numpy as np

from dense_descriptors_ros.evaluation.baselines import DescriptorMethod
from dense_descriptors_ros.evaluation.report import Report, plot_cumulative_curves
from dense_descriptors_ros.evaluation.suites.settings import SuiteSettings
from dense_descriptors_ros.evaluation.suites.shrunk_images import shrunk_descriptors, to_original, to_resized
from dense_descriptors_ros.metrics.error_percentile import error_percentiles
from dense_descriptors_ros.metrics.matching import (
    SAND_LOCAL_RADIUS,
    match_nearest,
    mean_matching_accuracy,
    mutual_nearest_mask,
    pck_from_errors,
    sand_auc,
)


def subsample(
    pts_a: np.ndarray, pts_b: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``count`` of the (pts_a, pts_b) pairs, drawn at random without replacement, in their original order."""
    if len(pts_a) <= count:
        return pts_a, pts_b
    keep = np.sort(rng.choice(len(pts_a), count, replace=False))
    return pts_a[keep], pts_b[keep]


def correspondence_figures(
    method: DescriptorMethod,
    pairs: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    settings: SuiteSettings,
) -> tuple[dict[str, float], np.ndarray]:
    """PCK, MMA (mutual NN) and SAND AUC of one method over (name, image_a, image_b, pts_a, pts_b) pairs.

    Points are in original pixels of their image; pixel errors are reported in original pixels of image b. An image
    that several pairs share (the same array) is described once.
    """
    described: dict[int, tuple[np.ndarray, tuple[float, float]]] = {}  # id(image): the pairs keep the images alive

    def describe(image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        if id(image) not in described:
            described[id(image)] = shrunk_descriptors(method, image, settings.max_side)
        return described[id(image)]

    errors, percentiles, mma_per_pair, auc_global, auc_local = [], [], [], [], []
    for _, image_a, image_b, pts_a, pts_b in pairs:
        (desc_a, scale_a), (desc_b, scale_b) = describe(image_a), describe(image_b)
        query = to_resized(pts_a, scale_a)
        pred_small = match_nearest(desc_a, desc_b, query)
        pair_errors = np.linalg.norm(to_original(pred_small, scale_b) - pts_b, axis=1)
        mutual = mutual_nearest_mask(desc_a, desc_b, query, pred_small)
        errors.append(pair_errors)
        mma_per_pair.append(mean_matching_accuracy(pair_errors[mutual]) | {"matches": int(mutual.sum())})
        target = to_resized(pts_b, scale_b)
        percentiles.append(error_percentiles(desc_a, desc_b, query, target))
        auc_global.append(sand_auc(desc_a, desc_b, query, target, seed=settings.seed))
        auc_local.append(
            sand_auc(desc_a, desc_b, query, target, radius=SAND_LOCAL_RADIUS * min(scale_b), seed=settings.seed)
        )
    all_errors = np.concatenate(errors)
    figures: dict[str, float] = pck_from_errors(all_errors)
    for key in mma_per_pair[0]:
        figures[key] = float(np.mean([m[key] for m in mma_per_pair]))
    figures["auc_global"] = float(np.mean([a["auc"] for a in auc_global]))
    figures["auc_local"] = float(np.mean([a["auc"] for a in auc_local]))
    figures["mu_pos"] = float(np.mean([a["mu_pos"] for a in auc_global]))
    figures["mu_neg_global"] = float(np.mean([a["mu_neg"] for a in auc_global]))
    figures["median_error_px"] = float(np.median(all_errors))
    figures["error_percentile"] = float(np.mean(np.concatenate(percentiles)))
    figures["points"] = len(all_errors)
    return figures, all_errors


CORRESPONDENCE_COLUMNS = [
    "method",
    "pck@1",
    "pck@3",
    "pck@5",
    "pck@10",
    "mma@1",
    "mma@3",
    "mma@5",
    "mma@10",
    "mma_mean",
    "matches",
    "auc_global",
    "auc_local",
    "median_error_px",
    "error_percentile",
]


def report_correspondences(
    report: Report, heading: str, results: dict[str, dict], errors: dict[str, np.ndarray], note: str
) -> None:
    rows = [{"method": name, **figures} for name, figures in results.items()]
    report.add_table(heading, rows, CORRESPONDENCE_COLUMNS, note=note)
    slug = heading.lower().replace(" ", "_")
    path = plot_cumulative_curves(
        errors, report.plot_path(f"{slug}_error_cdf"), "matching error [px, original image]", title=heading, x_max=30
    )
    report.add_plot(path, f"{heading}: cumulative matching error")
