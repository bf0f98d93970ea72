"""`dense-descriptors evaluate <suite>`: our model next to the baselines, on the same pixels, written as a report.

Suites:

- ``hpatches``: HPatches v_churchill, image 1 against images 2..6 with the ground-truth homographies. Grid points
  of image 1 that land inside image k are matched by dense nearest neighbour; PCK at 1/3/5/10 px over all of them,
  MMA at 1..10 px over mutual nearest-neighbour matches (D2-Net protocol, averaged over pairs), SAND AUC.
- ``sintel``: MPI-Sintel frames 2 -> 3 of three sequences, clean and final, against the GT flow on valid,
  non-occluded pixels: PCK at 1/3/5/10 px (UCN reports PCK@10), SAND AUC global and local (25 px).
- ``davis``: DAVIS 2016 label propagation with the CRW protocol (top-k, radius, temperature, context frames),
  J, F and J&F.
- ``rendered``: papers/000 section 4 on rendered objects (drill: weak texture, hulk: strong texture), each rendered
  over two backgrounds with the same motion; first half of a video = train, second half = test. Test 1 (Table 2):
  mean error percentile of object pixels between consecutive test frames, mean and std over pairs. Test 2
  (Table 1): random pairs per train/test x same/different background cell. Test 3 (Fig. 7): per-pixel cumulative
  curve. Test 4 (Fig. 6): pixel error at SIFT keypoints, SIFT's own matching vs dense nearest neighbour.

Images are shrunk so their longer side is at most ``--max-side`` (descriptors of every method are computed on the
same shrunk images); pixel errors are converted back to and reported in original-image pixels.
"""

from __future__ import annotations

import argparse
import logging
import math
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from dense_descriptors_ros.evaluation import real_datasets
from dense_descriptors_ros.evaluation.baselines import (
    BASELINE_NAMES,
    BaselineUnavailable,
    DescriptorMethod,
    NetworkDescriptors,
    make_baseline,
)
from dense_descriptors_ros.evaluation.report import (
    PAPER_000_TABLE1,
    PAPER_000_TABLE2,
    Report,
    plot_cumulative_curves,
    plot_histograms,
)
from dense_descriptors_ros.metrics.error_percentile import error_percentiles, mean_error_percentile
from dense_descriptors_ros.metrics.matching import (
    SAND_LOCAL_RADIUS,
    flow_correspondences,
    grid_points,
    inside_image,
    match_nearest,
    mean_matching_accuracy,
    mutual_nearest_mask,
    nearest_neighbour_indices,
    pck_from_errors,
    sand_auc,
    warp_points_homography,
)
from dense_descriptors_ros.metrics.segmentation import davis_j_and_f
from dense_descriptors_ros.synthetic.dataset_folders import write_object_dataset
from dense_descriptors_ros.synthetic.gl_rasterizer import RendererUnavailable
from dense_descriptors_ros.synthetic.object_renderer import ObjectSequence, correspondences
from dense_descriptors_ros.tracking.label_propagation import PropagationConfig, propagate_labels

log = logging.getLogger(__name__)

SUITES = ("hpatches", "sintel", "davis", "rendered")
SINTEL_PASSES = ("clean", "final")


@dataclass
class SuiteSettings:
    """What every suite shares: the image size, the number of query points, the seed and the data folder."""

    max_side: int = field(default=512, metadata={"help": "shrink images so the longer side is at most this (0: keep)"})
    points: int = field(default=1000, metadata={"help": "query points per image pair"})
    seed: int = field(default=0, metadata={"help": "seed of point subsampling and negative sampling"})
    data_dir: str | None = field(default=None, metadata={"help": "shared data folder (default: $DDR_DATA_DIR)"})
    sequences: tuple[str, ...] = field(default=(), metadata={"help": "DAVIS sequences (empty: all present)"})
    max_frames: int | None = field(default=None, metadata={"help": "DAVIS frames per sequence (None: all)"})
    propagation: PropagationConfig = field(default_factory=PropagationConfig)
    objects: tuple[str, ...] = field(default=("drill", "hulk"), metadata={"help": "rendered: objects"})
    backgrounds: tuple[str, str] = field(
        default=("photo", "blocks"), metadata={"help": "rendered: the two backgrounds (same / different)"}
    )
    render_frames: int = field(default=100, metadata={"help": "rendered: frames per video (half train, half test)"})
    pairs: int = field(default=20, metadata={"help": "rendered: frame pairs per protocol cell"})
    render_dir: str = field(default="rendered_data", metadata={"help": "rendered: folder of the rendered videos"})


def shrink(image: np.ndarray, max_side: int) -> tuple[np.ndarray, tuple[float, float]]:
    """Image resized so max(H, W) <= max_side, and the (sx, sy) scale from original to resized pixels."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image, (1.0, 1.0)
    scale = max_side / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA), (new_w / w, new_h / h)


def to_resized(pts: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Original-pixel (x, y) -> resized-pixel coordinates (pixel centres at integers in both)."""
    return (pts + 0.5) * np.asarray(scale) - 0.5


def to_original(pts: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    return (pts + 0.5) / np.asarray(scale) - 0.5


def subsample(
    pts_a: np.ndarray, pts_b: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``count`` of the (pts_a, pts_b) pairs, drawn at random without replacement, in their original order."""
    if len(pts_a) <= count:
        return pts_a, pts_b
    keep = np.sort(rng.choice(len(pts_a), count, replace=False))
    return pts_a[keep], pts_b[keep]


def build_methods(model: str | None, baselines: Sequence[str]) -> list[DescriptorMethod]:
    """Our checkpoint (when given) followed by the named baselines; unavailable baselines are skipped with a warning."""
    methods: list[DescriptorMethod] = []
    if model:
        methods.append(NetworkDescriptors.from_checkpoint(model, name="ours"))
    for name in baselines:
        try:
            methods.append(make_baseline(name))
        except BaselineUnavailable as err:
            log.warning("skipping baseline %s: %s", name, err)
    if not methods:
        raise ValueError("nothing to evaluate: give --model and/or --baselines")
    return methods


def _correspondence_figures(
    method: DescriptorMethod,
    pairs: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    settings: SuiteSettings,
) -> tuple[dict[str, float], np.ndarray]:
    """PCK, MMA (mutual NN) and SAND AUC of one method over (name, image_a, image_b, pts_a, pts_b) pairs.

    Points are in original pixels of their image; pixel errors are reported in original pixels of image b.
    """
    errors, percentiles, mma_per_pair, auc_global, auc_local = [], [], [], [], []
    for _, image_a, image_b, pts_a, pts_b in pairs:
        small_a, scale_a = shrink(image_a, settings.max_side)
        small_b, scale_b = shrink(image_b, settings.max_side)
        desc_a, desc_b = method.compute(small_a), method.compute(small_b)
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


def _report_correspondences(
    report: Report, heading: str, results: dict[str, dict], errors: dict[str, np.ndarray], note: str
) -> None:
    rows = [{"method": name, **figures} for name, figures in results.items()]
    report.add_table(heading, rows, CORRESPONDENCE_COLUMNS, note=note)
    slug = heading.lower().replace(" ", "_")
    path = plot_cumulative_curves(
        errors, report.plot_path(f"{slug}_error_cdf"), "matching error [px, original image]", title=heading, x_max=30
    )
    report.add_plot(path, f"{heading}: cumulative matching error")


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
        results[method.name], errors[method.name] = _correspondence_figures(method, pairs, settings)
    _report_correspondences(
        report,
        "HPatches v_churchill",
        results,
        errors,
        note=f"Image 1 vs 2..6, {settings.points} grid points per pair, images shrunk to {settings.max_side} px "
        "(errors in original pixels). PCK over all points; MMA over mutual nearest neighbours; AUC in %; "
        "error_percentile: papers/000 mean error percentile (%) of the true match.",
    )
    return results


def evaluate_sintel(methods: list[DescriptorMethod], settings: SuiteSettings, report: Report) -> dict[str, dict]:
    """Sintel figures per render pass and method (see the module docstring)."""
    rng = np.random.default_rng(settings.seed)
    all_results: dict[str, dict] = {}
    for render_pass in SINTEL_PASSES:
        pairs = []
        for sequence in real_datasets.SINTEL_SEQUENCES:
            pair = real_datasets.load_sintel_pair(sequence, render_pass, settings.data_dir)
            valid = ~pair.occluded & ~pair.invalid
            pts_a, pts_b = flow_correspondences(pair.flow, valid, step=2)
            pts_a, pts_b = subsample(pts_a, pts_b, settings.points, rng)
            pairs.append((sequence, pair.frame1, pair.frame2, pts_a, pts_b))
        results, errors = {}, {}
        for method in tqdm(methods, desc=f"sintel {render_pass}", unit="method"):
            results[method.name], errors[method.name] = _correspondence_figures(method, pairs, settings)
        _report_correspondences(
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


SPLIT_PAIRS = (("train", "train"), ("train", "test"), ("test", "test"))


def _render_object_videos(obj: str, settings: SuiteSettings) -> tuple[ObjectSequence, int]:
    """Videos of ``obj`` over each background (same seed: same object, motion and light), as one sequence.

    Frame t of background b is frame b * n + t of the result, so ``renderer.correspondences`` links frames across
    backgrounds. The first half of each video is "train", the second half "test" (papers/000 section 4).
    """
    folder = Path(settings.render_dir)
    videos = [
        write_object_dataset(
            folder / f"{obj}_{bg}_seed{settings.seed}_{settings.render_frames}",
            seed=settings.seed,
            n_frames=settings.render_frames,
            object=obj,
            background=bg,
        )
        for bg in settings.backgrounds
    ]
    first = videos[0]
    combined = ObjectSequence(
        rgb=np.concatenate([v.rgb for v in videos]),
        depth=np.concatenate([v.depth for v in videos]),
        instance_ids=np.concatenate([v.instance_ids for v in videos]),
        poses=np.concatenate([v.poses for v in videos]),
        K=first.K,
        background=first.background,
        lights=np.concatenate([v.lights for v in videos]),
        instance_names=first.instance_names,
    )
    return combined, settings.render_frames


def _object_correspondences(
    seq: ObjectSequence, i: int, j: int, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` random target-object pixels of frame i that are visible in frame j, and where they land."""
    ys, xs = np.nonzero(seq.masks[i])
    pts_i = np.column_stack([xs, ys]).astype(np.float64)
    pts_j, visible = correspondences(seq, i, j, pts_i)
    return subsample(pts_i[visible], pts_j[visible], count, rng)


def _sample_frame_pairs(
    seq: ObjectSequence,
    n: int,
    splits: tuple[str, str],
    other_background: bool,
    count: int,
    rng: np.random.Generator,
    min_points: int = 20,
) -> list[tuple[int, int]]:
    """Random (i, j) frame pairs: i from split 0 of background 0, j from split 1 of background 0 or 1."""
    half = {"train": (0, n // 2), "test": (n // 2, n)}
    offset = n if other_background else 0
    pairs: list[tuple[int, int]] = []
    for _ in range(50 * count):
        if len(pairs) == count:
            break
        i = int(rng.integers(*half[splits[0]]))
        j = int(rng.integers(*half[splits[1]])) + offset
        if i == j or (i, j) in pairs:
            continue
        if len(_object_correspondences(seq, i, j, min_points, rng)[0]) >= min_points:
            pairs.append((i, j))
    return pairs


def _sift_keypoint_errors(seq: ObjectSequence, i: int, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """papers/000 test 4: SIFT keypoints of frame i on the object with a visible true match in frame j.

    Returns the keypoints, their true positions in frame j and the error of SIFT's own matching (nearest SIFT
    descriptor among the keypoints detected in frame j).
    """
    sift = cv2.SIFT_create()
    gray_i = cv2.cvtColor(seq.rgb[i], cv2.COLOR_RGB2GRAY)
    gray_j = cv2.cvtColor(seq.rgb[j], cv2.COLOR_RGB2GRAY)
    kps_i, desc_i = sift.detectAndCompute(gray_i, seq.masks[i].astype(np.uint8) * 255)
    kps_j, desc_j = sift.detectAndCompute(gray_j, None)
    empty = np.zeros((0, 2))
    if desc_i is None or desc_j is None:
        return empty, empty, np.zeros(0)
    pts_i = np.array([kp.pt for kp in kps_i], dtype=np.float64)
    gt_j, visible = correspondences(seq, i, j, pts_i)
    nearest = nearest_neighbour_indices(desc_i[visible], desc_j)
    sift_pred = np.array([kps_j[k].pt for k in nearest], dtype=np.float64).reshape(-1, 2)
    return pts_i[visible], gt_j[visible], np.linalg.norm(sift_pred - gt_j[visible], axis=1)


def _shrunk_descriptors(
    method: DescriptorMethod, image: np.ndarray, max_side: int
) -> tuple[np.ndarray, tuple[float, float]]:
    """``method``'s descriptors of ``image`` shrunk to ``max_side``, and the original-to-shrunk scale."""
    small, scale = shrink(image, max_side)
    return method.compute(small), scale


def evaluate_rendered(methods: list[DescriptorMethod], settings: SuiteSettings, report: Report) -> dict[str, dict]:
    """papers/000 tests 1-4 on rendered objects; see the module docstring."""
    rng = np.random.default_rng(settings.seed)
    results: dict[str, dict] = {}
    table1_rows, table2_rows, test4_rows, plots = [], [], [], []
    for obj in settings.objects:
        seq, n = _render_object_videos(obj, settings)
        obj_results: dict[str, dict] = {m.name: {"table1": {}, "table2": {}} for m in methods}
        # Test 1 (Table 2): consecutive test frames of the first background.
        consecutive = [(t, t + 1) for t in range(n // 2, n - 1)][: settings.pairs]
        pixel_percentiles: dict[str, list[np.ndarray]] = {m.name: [] for m in methods}
        pair_means: dict[str, list[float]] = {m.name: [] for m in methods}
        for i, j in tqdm(consecutive, desc=f"{obj}: consecutive frames", unit="pair"):
            pts_i, pts_j = _object_correspondences(seq, i, j, settings.points, rng)
            if len(pts_i) == 0:
                continue
            for method in methods:
                desc_i, scale_i = _shrunk_descriptors(method, seq.rgb[i], settings.max_side)
                desc_j, scale_j = _shrunk_descriptors(method, seq.rgb[j], settings.max_side)
                values = error_percentiles(desc_i, desc_j, to_resized(pts_i, scale_i), to_resized(pts_j, scale_j))
                pixel_percentiles[method.name].append(values)
                pair_means[method.name].append(float(values.mean()))
        for name, means in pair_means.items():
            obj_results[name]["table2"] = {
                "mean": float(np.mean(means)),
                "std": float(np.std(means)),
                "pairs": len(means),
            }
            table2_rows.append({"object": obj, "method": name, **obj_results[name]["table2"]})
        for paper_method, figures in PAPER_000_TABLE2.get(obj, {}).items():
            table2_rows.append({"object": obj, "method": f"papers/000: {paper_method}", **figures})
        path = plot_cumulative_curves(
            {m: np.concatenate(v) for m, v in pixel_percentiles.items() if v},
            report.plot_path(f"{obj}_pixel_error_percentile_cdf"),
            "error percentile [%]",
            title=f"{obj}: per-pixel error percentile (test 3)",
            x_max=20,
        )
        plots.append((path, f"{obj}: per-pixel error percentile, consecutive test frames (papers/000 Fig. 7)"))
        # Test 2 (Table 1): random pairs across the train/test x same/different background grid; test 4 on them.
        sift_errors, dense_errors = [], {m.name: [] for m in methods}
        for background in ("same", "different"):
            for splits in SPLIT_PAIRS:
                cell = f"{splits[0]}-{splits[1]}"
                pairs = _sample_frame_pairs(seq, n, splits, background == "different", settings.pairs, rng)
                cell_means: dict[str, list[float]] = {m.name: [] for m in methods}
                for i, j in tqdm(pairs, desc=f"{obj}: {background} background, {cell}", unit="pair"):
                    pts_i, pts_j = _object_correspondences(seq, i, j, settings.points, rng)
                    kp_i, kp_gt, kp_sift_errors = _sift_keypoint_errors(seq, i, j)
                    sift_errors.append(kp_sift_errors)
                    for method in methods:
                        desc_i, scale_i = _shrunk_descriptors(method, seq.rgb[i], settings.max_side)
                        desc_j, scale_j = _shrunk_descriptors(method, seq.rgb[j], settings.max_side)
                        cell_means[method.name].append(
                            mean_error_percentile(
                                desc_i, desc_j, to_resized(pts_i, scale_i), to_resized(pts_j, scale_j)
                            )
                        )
                        if len(kp_i):
                            dense_pred = to_original(match_nearest(desc_i, desc_j, to_resized(kp_i, scale_i)), scale_j)
                            dense_errors[method.name].append(np.linalg.norm(dense_pred - kp_gt, axis=1))
                for name, means in cell_means.items():
                    obj_results[name]["table1"].setdefault(background, {})[cell] = float(np.mean(means))
        for name, r in obj_results.items():
            for background, cells in r["table1"].items():
                table1_rows.append({"object": obj, "method": name, "background": background, **cells})
        sift_all = np.concatenate(sift_errors) if sift_errors else np.zeros(0)
        test4 = {"SIFT keypoint matching": sift_all}
        test4.update({f"{m} (dense NN)": np.concatenate(v) for m, v in dense_errors.items() if v})
        for name, errors in test4.items():
            figures = {
                "median_px": float(np.median(errors)) if len(errors) else None,
                "within_5px": float(np.mean(errors <= 5.0)) if len(errors) else None,
                "keypoints": len(errors),
            }
            obj_results.setdefault(name, {})["test4"] = figures
            test4_rows.append({"object": obj, "matcher": name, **figures})
        path = plot_histograms(
            {k: np.minimum(v, 100.0) for k, v in test4.items()},
            report.plot_path(f"{obj}_sift_keypoint_errors"),
            "pixel error (clipped at 100)",
            title=f"{obj}: error at SIFT keypoints (test 4)",
            bins=25,
        )
        plots.append((path, f"{obj}: pixel error at SIFT keypoints (papers/000 Fig. 6)"))
        results[obj] = obj_results
    for paper_method, grid in PAPER_000_TABLE1.items():
        for background, cells in grid.items():
            table1_rows.append(
                {
                    "object": "drill",
                    "method": f"papers/000: {paper_method}",
                    "background": background.split("_")[0],
                    **cells,
                }
            )
    report.add_table(
        "papers/000 Table 2 protocol: consecutive test frames",
        table2_rows,
        ["object", "method", "mean", "std", "pairs"],
        digits=2,
        note=f"Mean error percentile (%) of object pixels per frame pair, then mean and std over up to "
        f"{settings.pairs} "
        f"consecutive pairs of the test half ({settings.render_frames}-frame renders, seed {settings.seed}).",
    )
    report.add_table(
        "papers/000 Table 1 protocol: train/test x same/different background",
        table1_rows,
        ["object", "method", "background", "train-train", "train-test", "test-test"],
        digits=2,
        note=f"Mean error percentile (%) over {settings.pairs} random frame pairs per cell; backgrounds "
        f"{' / '.join(settings.backgrounds)}; train = first half of each video. The paper's 'ours, same "
        "background' row is garbled in the text (3.9 and 3.2 are our reading of '39' and '32').",
    )
    report.add_table(
        "papers/000 test 4: pixel error at SIFT keypoints",
        test4_rows,
        ["object", "matcher", "median_px", "within_5px", "keypoints"],
        digits=2,
        note="SIFT keypoints detected on the object in frame i of the Table 1 pairs; SIFT's own matching takes the "
        "nearest SIFT descriptor among the keypoints of frame j, the dense methods the nearest pixel of frame j.",
    )
    for path, caption in plots:
        report.add_plot(path, caption)
    return results


SUITE_FUNCTIONS = {
    "hpatches": evaluate_hpatches,
    "sintel": evaluate_sintel,
    "davis": evaluate_davis,
    "rendered": evaluate_rendered,
}


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SuiteSettings()
    prop = defaults.propagation
    parser.add_argument("suite", choices=SUITES, help="which benchmark to run")
    parser.add_argument("--model", default="", help="checkpoint folder of our model (empty: baselines only)")
    parser.add_argument("--out", default="", help="report folder (default: reports/<suite>)")
    parser.add_argument(
        "--baselines",
        default=",".join(BASELINE_NAMES),
        help=f"comma-separated baselines from {','.join(BASELINE_NAMES)} (empty: none)",
    )
    parser.add_argument("--max-side", type=int, default=defaults.max_side, help="shrink images to this longer side")
    parser.add_argument("--points", type=int, default=defaults.points, help="query points per image pair")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="sampling seed")
    parser.add_argument(
        "--data-dir", default=None, help="shared data folder (default: $DDR_DATA_DIR or ../shared/data)"
    )
    parser.add_argument("--sequences", default="", help="DAVIS: comma-separated sequences (default: all present)")
    parser.add_argument("--max-frames", type=int, default=None, help="DAVIS: frames per sequence (default: all)")
    parser.add_argument("--topk", type=int, default=prop.topk, help="label propagation: top-k context cells")
    parser.add_argument("--radius", type=float, default=prop.radius, help="label propagation: radius in cells")
    parser.add_argument("--temperature", type=float, default=prop.temperature, help="label propagation: temperature")
    parser.add_argument(
        "--context-frames",
        type=int,
        default=prop.context_frames,
        help="label propagation: recent frames besides the first",
    )
    parser.add_argument("--objects", default=",".join(defaults.objects), help="rendered: comma-separated objects")
    parser.add_argument(
        "--backgrounds",
        default=",".join(defaults.backgrounds),
        help="rendered: two backgrounds, 'same' pairs use the first",
    )
    parser.add_argument(
        "--render-frames",
        type=int,
        default=defaults.render_frames,
        help="rendered: frames per video (first half train, second half test)",
    )
    parser.add_argument("--pairs", type=int, default=defaults.pairs, help="rendered: frame pairs per protocol cell")
    parser.add_argument(
        "--render-dir",
        default=defaults.render_dir,
        help="rendered: folder where the videos are rendered once and reused",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")


def settings_from_args(args: argparse.Namespace) -> SuiteSettings:
    if args.max_side < 0 or args.points < 1:
        raise ValueError(f"--max-side must be >= 0 and --points >= 1, got {args.max_side} and {args.points}")
    backgrounds = tuple(b for b in args.backgrounds.split(",") if b)
    if len(backgrounds) != 2:
        raise ValueError(f"--backgrounds needs exactly two names (same, different), got {args.backgrounds!r}")
    if args.render_frames < 4 or args.pairs < 1:
        raise ValueError(f"--render-frames must be >= 4 and --pairs >= 1, got {args.render_frames}, {args.pairs}")
    propagation = PropagationConfig(
        topk=args.topk, radius=args.radius, temperature=args.temperature, context_frames=args.context_frames
    )
    return SuiteSettings(
        max_side=args.max_side,
        points=args.points,
        seed=args.seed,
        data_dir=args.data_dir,
        sequences=tuple(s for s in args.sequences.split(",") if s),
        max_frames=args.max_frames,
        propagation=propagation,
        objects=tuple(o for o in args.objects.split(",") if o),
        backgrounds=backgrounds,
        render_frames=args.render_frames,
        pairs=args.pairs,
        render_dir=args.render_dir,
    )


def run_evaluate(args: argparse.Namespace) -> int:
    """Run one suite and write its report folder; returns 0, or 3 when its dataset is missing (skipped)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = settings_from_args(args)
    baselines = [b for b in args.baselines.split(",") if b]
    unknown = sorted(set(baselines) - set(BASELINE_NAMES))
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from {list(BASELINE_NAMES)}")
    methods = build_methods(args.model or None, baselines)
    out = Path(args.out or f"reports/{args.suite}")
    command = "dense-descriptors " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report = Report(out, f"Evaluation: {args.suite}", command=command)
    try:
        results = SUITE_FUNCTIONS[args.suite](methods, settings, report)
    except (real_datasets.DatasetMissing, RendererUnavailable) as err:
        log.warning("suite %s skipped: %s", args.suite, err)
        return 3
    report.add_figures(args.suite, results)
    path = report.write()
    log.info("report written to %s", path)
    print(path.read_text())
    return 0
