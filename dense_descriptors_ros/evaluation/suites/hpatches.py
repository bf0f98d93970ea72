"""``hpatches`` suite: HPatches v_churchill, image 1 against images 2..6 with the ground-truth homographies.

Grid points of image 1 that land inside image k are matched by dense nearest neighbour; PCK at 1/3/5/10 px over all
of them, MMA at 1..10 px over mutual nearest-neighbour matches (D2-Net protocol, averaged over pairs), SAND AUC.
"""

from __future__ import annotations

import math

import numpy as np
from tqdm import tqdm

from dense_descriptors_ros.evaluation import real_datasets
from dense_descriptors_ros.evaluation.baselines import DescriptorMethod
from dense_descriptors_ros.evaluation.report import Report
from dense_descriptors_ros.evaluation.suites.correspondences import (
    correspondence_figures,
    report_correspondences,
    subsample,
)
from dense_descriptors_ros.evaluation.suites.settings import SuiteSettings
from dense_descriptors_ros.metrics.matching import grid_points, inside_image, warp_points_homography


def evaluate_hpatches(methods: list[DescriptorMethod], settings: SuiteSettings, report: Report) -> dict[str, dict]:
    """HPatches v_churchill figures per method (see the module docstring)."""
    sequence = real_datasets.load_hpatches(settings.data_dir)
    rng = np.random.default_rng(settings.seed)
    reference = sequence.images[0]
    h, w = reference.shape[:2]
    step = max(1, int(math.sqrt(h * w / (2 * settings.points))))
    pairs = []
    for k, (image, homography) in enumerate(zip(sequence.images[1:], sequence.homographies, strict=True), start=2):
        pts_a = grid_points(h, w, step)
        pts_b = warp_points_homography(homography, pts_a)
        inside = inside_image(pts_b, *image.shape[:2])
        pts_a, pts_b = subsample(pts_a[inside], pts_b[inside], settings.points, rng)
        pairs.append((f"1-{k}", reference, image, pts_a, pts_b))
    results, errors = {}, {}
    for method in tqdm(methods, desc="hpatches", unit="method"):
        results[method.name], errors[method.name] = correspondence_figures(method, pairs, settings)
    report_correspondences(
        report,
        "HPatches v_churchill",
        results,
        errors,
        note=f"Image 1 vs 2..6, {settings.points} grid points per pair, images shrunk to {settings.max_side} px "
        "(errors in original pixels). PCK over all points; MMA over mutual nearest neighbours; AUC in %; "
        "error_percentile: papers/000 mean error percentile (%) of the true match.",
    )
    return results
