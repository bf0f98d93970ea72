"""The evaluation suites: the rendered suite at the size the methods are scored at, and the image shrinking every
suite shares (the suites end to end through `dense-descriptors evaluate`: test/cli/test_cli_evaluate.py)."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptors_ros.evaluation.baselines import make_baseline
from dense_descriptors_ros.evaluation.report import Report
from dense_descriptors_ros.evaluation.suites.correspondences import correspondence_figures
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


class Recording:
    """The raw-colour baseline, recording the size of every image it describes."""

    name = "recording"

    def __init__(self) -> None:
        self.colour = make_baseline("raw_colour")
        self.sizes: list[tuple[int, int]] = []

    def compute(self, image: np.ndarray) -> np.ndarray:
        self.sizes.append(image.shape[:2])
        return self.colour.compute(image)


def test_evaluate_rendered_computes_every_descriptor_at_max_side(tmp_path):
    """A model trained at 160x120 is scored at 160x120: every method sees the frames shrunk to --max-side."""
    recording = Recording()
    settings = SuiteSettings(
        objects=("drill",), render_frames=8, pairs=1, points=40, max_side=160, render_dir=str(tmp_path / "renders")
    )
    try:
        results = evaluate_rendered([recording], settings, Report(tmp_path / "report", "rendered"))
    except RendererUnavailable:
        pytest.skip("no headless OpenGL renderer on this machine")
    assert recording.sizes and set(recording.sizes) == {(120, 160)}
    figures = results["drill"]["recording"]
    assert 0.0 <= figures["table2"]["mean"] <= 100.0
    assert set(figures["table1"]) == {"same", "different"}


def test_correspondence_figures_describe_an_image_shared_by_pairs_once():
    """HPatches pairs image 1 with five others, the lmo suite reuses its frames: each array is described once."""
    recording = Recording()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 60, 3), dtype=np.uint8) for _ in range(3)]
    pts = np.array([[10.0, 10.0], [30.0, 20.0]])
    pairs = [("1-2", images[0], images[1], pts, pts), ("1-3", images[0], images[2], pts, pts)]
    figures, errors = correspondence_figures(recording, pairs, SuiteSettings(max_side=30))
    assert recording.sizes == [(20, 30)] * 3 and figures["points"] == 4 and len(errors) == 4
