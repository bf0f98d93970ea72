"""The evaluation suites end to end on tiny generated datasets (HPatches-, DAVIS-like folders, rendered videos), and
the image shrinking they share."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from dense_descriptors_ros.evaluation.baselines import make_baseline
from dense_descriptors_ros.evaluation.report import Report
from dense_descriptors_ros.evaluation.suites.command import add_evaluate_arguments, run_evaluate
from dense_descriptors_ros.evaluation.suites.rendered import evaluate_rendered
from dense_descriptors_ros.evaluation.suites.settings import SuiteSettings
from dense_descriptors_ros.evaluation.suites.shrunk_images import shrink, to_original, to_resized
from dense_descriptors_ros.synthetic.gl_rasterizer import RendererUnavailable


def test_shrink_keeps_pixel_centres():
    image = np.zeros((100, 200, 3), np.uint8)
    small, scale = shrink(image, 50)
    assert small.shape == (25, 50, 3) and scale == (0.25, 0.25)
    pts = np.array([[0.0, 0.0], [199.0, 99.0], [10.5, 3.0]])
    np.testing.assert_allclose(to_original(to_resized(pts, scale), scale), pts)
    np.testing.assert_allclose(to_resized(np.array([[1.5, 1.5]]), scale), [[0.0, 0.0]])  # centre of the first 4x4 block
    assert shrink(image, 0)[1] == (1.0, 1.0)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_evaluate_arguments(parser)
    return parser.parse_args(list(argv))


def test_evaluate_hpatches_on_a_generated_dataset(tmp_path):
    """The suite end to end on a tiny HPatches-like folder (a shifted texture), with two fast baselines."""
    import cv2

    folder = tmp_path / "data" / "hpatches_v_churchill"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur((rng.random((70, 90, 3)) * 255).astype(np.uint8), (5, 5), 1.0)
    for k in range(1, 7):
        shift = (k - 1) * 2
        image = np.roll(base, shift, axis=1)
        cv2.imwrite(str(folder / f"{k}.png"), image[..., ::-1])
        if k > 1:
            np.savetxt(folder / f"H_1_{k}", np.array([[1, 0, shift], [0, 1, 0], [0, 0, 1.0]]))
    out = tmp_path / "report"
    args = _args(
        "hpatches",
        "--baselines",
        "raw_colour,orb",
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(out),
        "--points",
        "60",
        "--max-side",
        "0",
    )
    assert run_evaluate(args) == 0
    figures = json.loads((out / "figures.json").read_text())["figures"]["hpatches"]
    assert set(figures) == {"raw_colour", "orb"}
    assert figures["raw_colour"]["pck@1"] > 0.9 and figures["raw_colour"]["error_percentile"] < 1.0
    assert (out / "hpatches_v_churchill_error_cdf.png").is_file()
    assert "| raw_colour |" in (out / "report.md").read_text()


def test_evaluate_skips_missing_data(tmp_path):
    args = _args("sintel", "--baselines", "raw_colour", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r"))
    assert run_evaluate(args) == 3


def test_evaluate_rejects_unknown_baseline(tmp_path):
    with pytest.raises(ValueError, match="unknown baselines"):
        run_evaluate(_args("hpatches", "--baselines", "surf", "--out", str(tmp_path)))


def test_evaluate_rendered_protocols(tmp_path):
    """papers/000 tests 1-4 on a tiny rendered drill video pair, raw colour only (skips without OpenGL)."""
    out = tmp_path / "report"
    args = _args(
        "rendered",
        "--baselines",
        "raw_colour",
        "--objects",
        "drill",
        "--render-frames",
        "8",
        "--pairs",
        "1",
        "--points",
        "40",
        "--render-dir",
        str(tmp_path / "renders"),
        "--out",
        str(out),
    )
    code = run_evaluate(args)
    if code == 3:
        pytest.skip("no headless OpenGL renderer on this machine")
    assert code == 0
    drill = json.loads((out / "figures.json").read_text())["figures"]["rendered"]["drill"]
    table1 = drill["raw_colour"]["table1"]
    assert set(table1) == {"same", "different"}
    assert set(table1["same"]) == {"train-train", "train-test", "test-test"}
    assert 0.0 <= drill["raw_colour"]["table2"]["mean"] <= 100.0
    assert "test4" in drill["SIFT keypoint matching"]
    text = (out / "report.md").read_text()
    assert "papers/000: SIFT" in text and "papers/000 Table 1 protocol" in text
    assert (out / "drill_pixel_error_percentile_cdf.png").is_file()


def test_evaluate_rendered_computes_every_descriptor_at_max_side(tmp_path):
    """A model trained at 160x120 is scored at 160x120: every method sees the frames shrunk to --max-side."""
    colour = make_baseline("raw_colour")
    sizes: list[tuple[int, int]] = []

    class Recording:
        name = "recording"

        def compute(self, image: np.ndarray) -> np.ndarray:
            sizes.append(image.shape[:2])
            return colour.compute(image)

    settings = SuiteSettings(
        objects=("drill",), render_frames=8, pairs=1, points=40, max_side=160, render_dir=str(tmp_path / "renders")
    )
    try:
        results = evaluate_rendered([Recording()], settings, Report(tmp_path / "report", "rendered"))
    except RendererUnavailable:
        pytest.skip("no headless OpenGL renderer on this machine")
    assert sizes and set(sizes) == {(120, 160)}
    figures = results["drill"]["recording"]
    assert 0.0 <= figures["table2"]["mean"] <= 100.0
    assert set(figures["table1"]) == {"same", "different"}


def test_evaluate_davis_on_a_generated_sequence(tmp_path):
    """Label propagation J&F end to end on a tiny DAVIS-like folder: a textured square sliding over noise."""
    import cv2

    root = tmp_path / "data" / "davis2016"
    frames_dir = root / "JPEGImages" / "480p" / "square"
    masks_dir = root / "Annotations" / "480p" / "square"
    frames_dir.mkdir(parents=True)
    masks_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur((rng.random((64, 96, 3)) * 255).astype(np.uint8), (5, 5), 1.0)
    patch = np.zeros((24, 24, 3), np.uint8)
    patch[:, :, 0] = 255
    patch[::4, :, 1] = 255
    for t in range(5):
        frame, mask = background.copy(), np.zeros((64, 96), np.uint8)
        x = 10 + 4 * t
        frame[20:44, x : x + 24] = patch
        mask[20:44, x : x + 24] = 255
        cv2.imwrite(str(frames_dir / f"{t:05d}.jpg"), frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])
        cv2.imwrite(str(masks_dir / f"{t:05d}.png"), mask)
    out = tmp_path / "report"
    args = _args(
        "davis",
        "--baselines",
        "raw_colour",
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(out),
        "--radius",
        "4",
        "--context-frames",
        "2",
    )
    assert run_evaluate(args) == 0
    figures = json.loads((out / "figures.json").read_text())["figures"]["davis"]["raw_colour"]
    assert figures["sequences"]["square"]["frames"] == 3
    assert figures["J_mean"] > 0.6 and 0.0 <= figures["F_mean"] <= 1.0
    assert "CRW protocol: top-k 10, radius 4.0" in (out / "report.md").read_text()
