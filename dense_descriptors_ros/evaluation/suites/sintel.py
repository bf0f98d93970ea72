"""``sintel`` suite: MPI-Sintel frames 2 -> 3 of three sequences, clean and final, against the ground-truth flow.

On valid, non-occluded pixels: PCK at 1/3/5/10 px (UCN reports PCK@10), SAND AUC global and local (25 px).
"""

from __future__ import annotations

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
from dense_descriptors_ros.metrics.matching import flow_correspondences


def evaluate_sintel(methods: list[DescriptorMethod], settings: SuiteSettings, report: Report) -> dict[str, dict]:
    """Sintel figures per render pass and method (see the module docstring)."""
    rng = np.random.default_rng(settings.seed)
    all_results: dict[str, dict] = {}
    for render_pass in real_datasets.SINTEL_PASSES:
        pairs = []
        for sequence in real_datasets.SINTEL_SEQUENCES:
            pair = real_datasets.load_sintel_pair(sequence, render_pass, settings.data_dir)
            valid = ~pair.occluded & ~pair.invalid
            pts_a, pts_b = flow_correspondences(pair.flow, valid, step=2)
            pts_a, pts_b = subsample(pts_a, pts_b, settings.points, rng)
            pairs.append((sequence, pair.frame1, pair.frame2, pts_a, pts_b))
        results, errors = {}, {}
        for method in tqdm(methods, desc=f"sintel {render_pass}", unit="method"):
            results[method.name], errors[method.name] = correspondence_figures(method, pairs, settings)
        report_correspondences(
            report,
            f"Sintel {render_pass}",
            results,
            errors,
            note=f"Frames 2 -> 3 of {', '.join(real_datasets.SINTEL_SEQUENCES)}; GT flow on valid non-occluded "
            f"pixels, {settings.points} points per pair. UCN (papers/001 Table 3) reports Sintel PCK@10 of 68.4 "
            "for SIFT-NN and 91.5 for UCN on its own train/val split (protocol not identical).",
        )
        all_results[render_pass] = results
    return all_results
