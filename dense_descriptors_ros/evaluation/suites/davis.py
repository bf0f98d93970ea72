"""``davis`` suite: DAVIS 2016 label propagation with the CRW protocol (top-k, radius, temperature, context frames),
J, F and J&F.
"""

from __future__ import annotations

import cv2
import numpy as np
from tqdm import tqdm

from dense_descriptors_ros.evaluation import real_datasets
from dense_descriptors_ros.evaluation.baselines import DescriptorMethod
from dense_descriptors_ros.evaluation.report import Report, plot_histograms
from dense_descriptors_ros.evaluation.suites.settings import SuiteSettings
from dense_descriptors_ros.evaluation.suites.shrunk_images import shrink
from dense_descriptors_ros.metrics.segmentation import davis_j_and_f
from dense_descriptors_ros.tracking.label_propagation import propagate_labels


def evaluate_davis(methods: list[DescriptorMethod], settings: SuiteSettings, report: Report) -> dict[str, dict]:
    """DAVIS J&F per method, averaged over sequences, with the per-sequence figures (see the module docstring)."""
    names = list(settings.sequences) or real_datasets.davis_sequences(settings.data_dir)
    if not names:
        raise real_datasets.DatasetMissing("no DAVIS sequences found")
    per_method: dict[str, dict[str, dict]] = {m.name: {} for m in methods}
    for name in tqdm(names, desc="davis", unit="sequence"):
        sequence = real_datasets.load_davis_sequence(name, settings.data_dir, settings.max_frames)
        h, w = sequence.masks[0].shape
        small = [shrink(frame, settings.max_side)[0] for frame in sequence.frames]
        first_labels = cv2.resize(
            sequence.masks[0].astype(np.uint8), small[0].shape[1::-1], interpolation=cv2.INTER_NEAREST
        )
        for method in methods:
            descriptors = (method.compute(frame) for frame in small)
            labels = propagate_labels(descriptors, first_labels, settings.propagation)
            masks = [cv2.resize(lab.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0 for lab in labels]
            per_method[method.name][name] = davis_j_and_f(masks, sequence.masks)
    results = {}
    for method_name, sequences in per_method.items():
        keys = ("J_mean", "J_recall", "F_mean", "F_recall", "J&F_mean")
        results[method_name] = {k: float(np.mean([s[k] for s in sequences.values()])) for k in keys}
        results[method_name]["sequences"] = sequences
    cfg = settings.propagation
    rows = [{"method": m, **{k: v for k, v in r.items() if k != "sequences"}} for m, r in results.items()]
    report.add_table(
        "DAVIS 2016 label propagation",
        rows,
        ["method", "J&F_mean", "J_mean", "F_mean", "J_recall", "F_recall"],
        note=f"CRW protocol: top-k {cfg.topk}, radius {cfg.radius} cells, temperature {cfg.temperature}, "
        f"{cfg.context_frames} context frames, stride {cfg.downsample}; sequences {', '.join(names)}; frames shrunk "
        f"to {settings.max_side} px. Published DAVIS-2017 numbers (SFC Table 1) are not the same protocol/data.",
    )
    path = plot_histograms(
        {m: [s["J&F_mean"] for s in r["sequences"].values()] for m, r in results.items()},
        report.plot_path("davis_jf_per_sequence"),
        "J&F mean per sequence",
        bins=10,
    )
    report.add_plot(path, "DAVIS J&F per sequence")
    return results
