"""Descriptor quality on real data: the untrained network next to dense SIFT, ORB, raw colour and MobileNetV2.

HPatches v_churchill (image 1 vs 2..6, ground-truth homographies: PCK, mutual-NN MMA, error percentile) and
MPI-Sintel clean + final (frames 2 -> 3 against GT flow on valid non-occluded pixels: PCK, SAND AUC), all methods
on the same shrunk images and the same points in one run. Prints one JSON line.

Run: `.venv/bin/pytest -m bench -s benchmarks/test_bench_descriptors.py` (needs ../shared/data or $DDR_DATA_DIR).
"""

import json
import time

import pytest
import torch

from dense_descriptors_ros.evaluation import real_datasets
from dense_descriptors_ros.evaluation.baselines import BASELINE_NAMES, build_methods
from dense_descriptors_ros.evaluation.report import Report
from dense_descriptors_ros.evaluation.suites.hpatches import evaluate_hpatches
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
