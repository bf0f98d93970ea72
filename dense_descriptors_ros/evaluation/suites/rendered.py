"""``rendered`` suite: the tests of papers/000 section 4 on rendered objects, next to the paper's figures.

The drill (weak texture) and the hulk (strong texture) are each rendered over two backgrounds with the same motion
(``rendered_videos``); the first half of a video is "train", the second half "test". One function per test:

- test 1 (Table 2), ``consecutive_frames_test``: mean error percentile of object pixels between consecutive test
  frames, mean and std over the pairs;
- test 3 (Fig. 7), ``plot_pixel_percentiles``: the per-pixel cumulative curve of test 1's error percentiles;
- test 2 (Table 1), ``background_grid_test``: random frame pairs per train/test x same/different background cell;
- test 4 (Fig. 6), ``SiftKeypointTest``: pixel error at SIFT keypoints, SIFT's own matching against dense nearest
  neighbour. It runs on the frame pairs of test 2, which hands it the descriptors it computed (so each descriptor
  image is computed once for both tests).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dense_descriptors_ros.evaluation.baselines import DescriptorMethod
from dense_descriptors_ros.evaluation.report import (
    PAPER_000_TABLE1,
    PAPER_000_TABLE2,
    Report,
    plot_cumulative_curves,
    plot_histograms,
)
from dense_descriptors_ros.evaluation.suites.rendered_videos import (
    SPLIT_PAIRS,
    ObjectVideos,
    object_correspondences,
    render_object_videos,
    sample_frame_pairs,
)
from dense_descriptors_ros.evaluation.suites.settings import SuiteSettings
from dense_descriptors_ros.evaluation.suites.shrunk_images import shrunk_descriptors, to_original, to_resized
from dense_descriptors_ros.metrics.error_percentile import error_percentiles, mean_error_percentile
from dense_descriptors_ros.metrics.matching import match_nearest, nearest_neighbour_indices
from dense_descriptors_ros.synthetic.object_renderer import ObjectSequence, correspondences


def consecutive_frames_test(
    videos: ObjectVideos, methods: list[DescriptorMethod], settings: SuiteSettings, rng: np.random.Generator
) -> tuple[dict[str, dict[str, float]], dict[str, list[np.ndarray]]]:
    """papers/000 test 1 (Table 2) on up to ``settings.pairs`` consecutive frame pairs of the test half (first
    background): per method the mean, std and number of the pairs' mean error percentiles, and every object
    pixel's error percentile (for test 3)."""
    seq, n = videos.seq, videos.n
    consecutive = [(t, t + 1) for t in range(n // 2, n - 1)][: settings.pairs]
    pixel_percentiles: dict[str, list[np.ndarray]] = {m.name: [] for m in methods}
    pair_means: dict[str, list[float]] = {m.name: [] for m in methods}
    for i, j in tqdm(consecutive, desc=f"{videos.name}: consecutive frames", unit="pair"):
        pts_i, pts_j = object_correspondences(seq, i, j, settings.points, rng)
        if len(pts_i) == 0:
            continue
        for method in methods:
            desc_i, scale_i = shrunk_descriptors(method, seq.rgb[i], settings.max_side)
            desc_j, scale_j = shrunk_descriptors(method, seq.rgb[j], settings.max_side)
            values = error_percentiles(desc_i, desc_j, to_resized(pts_i, scale_i), to_resized(pts_j, scale_j))
            pixel_percentiles[method.name].append(values)
            pair_means[method.name].append(float(values.mean()))
    table2 = {
        name: {"mean": float(np.mean(means)), "std": float(np.std(means)), "pairs": len(means)}
        for name, means in pair_means.items()
    }
    return table2, pixel_percentiles


def plot_pixel_percentiles(
    obj: str, pixel_percentiles: dict[str, list[np.ndarray]], report: Report
) -> tuple[Path, str]:
    """papers/000 test 3 (Fig. 7): the cumulative curve of test 1's per-pixel error percentiles; (plot, caption)."""
    path = plot_cumulative_curves(
        {m: np.concatenate(v) for m, v in pixel_percentiles.items() if v},
        report.plot_path(f"{obj}_pixel_error_percentile_cdf"),
        "error percentile [%]",
        title=f"{obj}: per-pixel error percentile (test 3)",
        x_max=20,
    )
    return path, f"{obj}: per-pixel error percentile, consecutive test frames (papers/000 Fig. 7)"


class SiftKeypointTest:
    """papers/000 test 4 (Fig. 6): pixel error at SIFT keypoints detected on the object in frame i.

    SIFT's own matching takes the nearest SIFT descriptor among the keypoints detected in frame j; each dense method
    the nearest pixel of frame j. Fed pair by pair: ``start_pair`` (SIFT), then ``add_descriptors`` per method.
    """

    SIFT = "SIFT keypoint matching"

    def __init__(self) -> None:
        self._sift_errors: list[np.ndarray] = []
        self._dense_errors: dict[str, list[np.ndarray]] = {}
        self._keypoints = self._truth = np.zeros((0, 2))

    def start_pair(self, seq: ObjectSequence, i: int, j: int) -> None:
        """SIFT keypoints of frame i on the object with a visible true match in frame j, and SIFT's own errors."""
        sift = cv2.SIFT_create()
        gray_i = cv2.cvtColor(seq.rgb[i], cv2.COLOR_RGB2GRAY)
        gray_j = cv2.cvtColor(seq.rgb[j], cv2.COLOR_RGB2GRAY)
        kps_i, desc_i = sift.detectAndCompute(gray_i, seq.masks[i].astype(np.uint8) * 255)
        kps_j, desc_j = sift.detectAndCompute(gray_j, None)
        if desc_i is None or desc_j is None:
            self._keypoints = self._truth = np.zeros((0, 2))
            self._sift_errors.append(np.zeros(0))
            return
        pts_i = np.array([kp.pt for kp in kps_i], dtype=np.float64)
        gt_j, visible = correspondences(seq, i, j, pts_i)
        nearest = nearest_neighbour_indices(desc_i[visible], desc_j)
        sift_pred = np.array([kps_j[k].pt for k in nearest], dtype=np.float64).reshape(-1, 2)
        self._keypoints, self._truth = pts_i[visible], gt_j[visible]
        self._sift_errors.append(np.linalg.norm(sift_pred - self._truth, axis=1))

    def add_descriptors(
        self,
        method: str,
        desc_i: np.ndarray,
        scale_i: tuple[float, float],
        desc_j: np.ndarray,
        scale_j: tuple[float, float],
    ) -> None:
        """Errors of ``method``'s dense nearest neighbour at the keypoints of the current pair (original pixels)."""
        if len(self._keypoints):
            dense_pred = to_original(match_nearest(desc_i, desc_j, to_resized(self._keypoints, scale_i)), scale_j)
            self._dense_errors.setdefault(method, []).append(np.linalg.norm(dense_pred - self._truth, axis=1))

    def errors(self) -> dict[str, np.ndarray]:
        """Pixel errors of SIFT's matching and of every dense method that had keypoints to match."""
        errors = {self.SIFT: np.concatenate(self._sift_errors) if self._sift_errors else np.zeros(0)}
        errors.update({f"{m} (dense NN)": np.concatenate(v) for m, v in self._dense_errors.items()})
        return errors

    def figures(self) -> dict[str, dict[str, float | int | None]]:
        """Median error, share within 5 px and number of keypoints per matcher."""
        return {
            name: {
                "median_px": float(np.median(errors)) if len(errors) else None,
                "within_5px": float(np.mean(errors <= 5.0)) if len(errors) else None,
                "keypoints": len(errors),
            }
            for name, errors in self.errors().items()
        }

    def plot(self, obj: str, report: Report) -> tuple[Path, str]:
        """Histogram of the errors (clipped at 100 px); (plot, caption)."""
        path = plot_histograms(
            {k: np.minimum(v, 100.0) for k, v in self.errors().items()},
            report.plot_path(f"{obj}_sift_keypoint_errors"),
            "pixel error (clipped at 100)",
            title=f"{obj}: error at SIFT keypoints (test 4)",
            bins=25,
        )
        return path, f"{obj}: pixel error at SIFT keypoints (papers/000 Fig. 6)"


def background_grid_test(
    videos: ObjectVideos,
    methods: list[DescriptorMethod],
    settings: SuiteSettings,
    rng: np.random.Generator,
    keypoints: SiftKeypointTest,
) -> dict[str, dict[str, dict[str, float]]]:
    """papers/000 test 2 (Table 1): per method, background (same, different) and train/test cell, the mean error
    percentile over ``settings.pairs`` random frame pairs. Frame i is from the first background, frame j from the
    same or the other one. Every pair and its descriptors also go to ``keypoints`` (test 4)."""
    seq, n = videos.seq, videos.n
    table1: dict[str, dict[str, dict[str, float]]] = {m.name: {} for m in methods}
    for background in ("same", "different"):
        for splits in SPLIT_PAIRS:
            cell = f"{splits[0]}-{splits[1]}"
            pairs = sample_frame_pairs(seq, n, splits, background == "different", settings.pairs, rng)
            cell_means: dict[str, list[float]] = {m.name: [] for m in methods}
            for i, j in tqdm(pairs, desc=f"{videos.name}: {background} background, {cell}", unit="pair"):
                pts_i, pts_j = object_correspondences(seq, i, j, settings.points, rng)
                keypoints.start_pair(seq, i, j)
                for method in methods:
                    desc_i, scale_i = shrunk_descriptors(method, seq.rgb[i], settings.max_side)
                    desc_j, scale_j = shrunk_descriptors(method, seq.rgb[j], settings.max_side)
                    cell_means[method.name].append(
                        mean_error_percentile(desc_i, desc_j, to_resized(pts_i, scale_i), to_resized(pts_j, scale_j))
                    )
                    keypoints.add_descriptors(method.name, desc_i, scale_i, desc_j, scale_j)
            for name, means in cell_means.items():
                table1[name].setdefault(background, {})[cell] = float(np.mean(means))
    return table1


def evaluate_rendered(methods: list[DescriptorMethod], settings: SuiteSettings, report: Report) -> dict[str, dict]:
    """papers/000 tests 1-4 on rendered objects; see the module docstring."""
    rng = np.random.default_rng(settings.seed)
    results: dict[str, dict] = {}
    table1_rows, table2_rows, test4_rows, plots = [], [], [], []
    for obj in settings.objects:
        videos = render_object_videos(obj, settings)
        obj_results: dict[str, dict] = {m.name: {"table1": {}, "table2": {}} for m in methods}
        table2, pixel_percentiles = consecutive_frames_test(videos, methods, settings, rng)
        for name, figures in table2.items():
            obj_results[name]["table2"] = figures
            table2_rows.append({"object": obj, "method": name, **figures})
        for paper_method, figures in PAPER_000_TABLE2.get(obj, {}).items():
            table2_rows.append({"object": obj, "method": f"papers/000: {paper_method}", **figures})
        plots.append(plot_pixel_percentiles(obj, pixel_percentiles, report))
        keypoints = SiftKeypointTest()
        table1 = background_grid_test(videos, methods, settings, rng, keypoints)
        for name, grid in table1.items():
            obj_results[name]["table1"] = grid
            for background, cells in grid.items():
                table1_rows.append({"object": obj, "method": name, "background": background, **cells})
        for name, figures in keypoints.figures().items():
            obj_results.setdefault(name, {})["test4"] = figures
            test4_rows.append({"object": obj, "matcher": name, **figures})
        plots.append(keypoints.plot(obj, report))
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
    _add_tables(report, settings, table1_rows, table2_rows, test4_rows)
    for path, caption in plots:
        report.add_plot(path, caption)
    return results


def _add_tables(
    report: Report, settings: SuiteSettings, table1_rows: list[dict], table2_rows: list[dict], test4_rows: list[dict]
) -> None:
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
