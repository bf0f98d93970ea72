"""Descriptor quality on real data: the untrained network next to dense SIFT, ORB, raw colour and MobileNetV2.

HPatches v_churchill (image 1 vs 2..6, ground-truth homographies: PCK, mutual-NN MMA, error percentile) and
MPI-Sintel clean + final (frames 2 -> 3 against GT flow on valid non-occluded pixels: PCK, SAND AUC), all methods
on the same shrunk images and the same points in one run. Prints one JSON line.

``test_wide_baselines_on_real_textureless_objects``: the ``lmo`` suite (BOP LM-O scene 2, real views of texture-less
objects, ground truth from their meshes and poses) at 320 px, per viewpoint-change bin: the out-of-the-box model,
its old stride-16 baseline and dense SIFT, and the checkpoint in $DDR_LMO_MODEL when set (e.g. one trained on the
scene's first half, README "Real texture-less objects").

Run: `.venv/bin/pytest -m bench -s benchmarks/test_bench_descriptors.py` (needs ../shared/data or $DDR_DATA_DIR).
"""

import json
import os
import time

import pytest
import torch

from dense_descriptors_ros.evaluation import real_datasets
from dense_descriptors_ros.evaluation.baselines import BASELINE_NAMES, build_methods
from dense_descriptors_ros.evaluation.report import Report
from dense_descriptors_ros.evaluation.suites.hpatches import evaluate_hpatches
from dense_descriptors_ros.evaluation.suites.lmo import evaluate_lmo
from dense_descriptors_ros.evaluation.suites.settings import SuiteSettings
from dense_descriptors_ros.evaluation.suites.sintel import evaluate_sintel

pytestmark = pytest.mark.bench
KEYS = ("pck@1", "pck@3", "pck@10", "mma@3", "mma_mean", "auc_global", "auc_local", "error_percentile")


def test_descriptor_quality_on_real_data(tmp_path):
    for name in ("hpatches_v_churchill", "sintel"):
        try:
            real_datasets.dataset_dir(name)
        except real_datasets.DatasetMissing as err:
            pytest.skip(str(err))
    torch.set_num_threads(2)
    settings = SuiteSettings(max_side=320, points=300)
    methods = build_methods(None, BASELINE_NAMES)
    report = Report(tmp_path / "report", "bench")
    start = time.perf_counter()
    hpatches = evaluate_hpatches(methods, settings, report)
    sintel = evaluate_sintel(methods, settings, report)
    figures = {
        "date": time.strftime("%Y-%m-%d"),
        "max_side": settings.max_side,
        "points_per_pair": settings.points,
        "seconds": round(time.perf_counter() - start, 1),
        "hpatches": {m: {k: round(v[k], 4) for k in KEYS} for m, v in hpatches.items()},
        "sintel_clean": {m: {k: round(v[k], 4) for k in KEYS} for m, v in sintel["clean"].items()},
        "sintel_final": {m: {k: round(v[k], 4) for k in KEYS} for m, v in sintel["final"].items()},
    }
    print(json.dumps(figures))
    # Sanity: dense SIFT finds Sintel matches far better than the untrained network.
    assert sintel["clean"]["dense_sift"]["pck@10"] > sintel["clean"]["untrained"]["pck@10"]


def test_wide_baselines_on_real_textureless_objects(tmp_path):
    try:
        real_datasets.dataset_dir(real_datasets.LMO_FOLDER)
    except real_datasets.DatasetMissing as err:
        pytest.skip(str(err))
    torch.set_num_threads(2)
    settings = SuiteSettings(max_side=320, points=1000, pairs=20)
    methods = build_methods(os.environ.get("DDR_LMO_MODEL"), ["pretrained", "mobilenet_v2", "dense_sift"])
    start = time.perf_counter()
    results = evaluate_lmo(methods, settings, Report(tmp_path / "report", "bench"))
    keys = ("pck@3", "pck@5", "pck@10", "median_error_px", "error_percentile")
    figures = {
        "date": time.strftime("%Y-%m-%d"),
        "suite": "lmo",
        "model": os.environ.get("DDR_LMO_MODEL", ""),
        "max_side": settings.max_side,
        "seconds": round(time.perf_counter() - start, 1),
        "load_average": round(os.getloadavg()[0], 2),
        "by_viewpoint_change": {
            label: {m: {k: round(v[k], 4) for k in keys} for m, v in methods_figures.items()}
            for label, methods_figures in results.items()
        },
    }
    print(json.dumps(figures))
    # The claim the package makes: on texture-less objects the fused ImageNet features beat dense SIFT at every turn.
    for label, methods_figures in results.items():
        assert methods_figures["pretrained"]["pck@10"] > methods_figures["dense_sift"]["pck@10"], label
