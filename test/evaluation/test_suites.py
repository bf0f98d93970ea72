"""The evaluation suites: the rendered suite at the size the methods are scored at, and the image shrinking every
suite shares (the suites end to end through `dense-descriptors evaluate`: test/cli/test_cli_evaluate.py)."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptors_ros.evaluation.baselines import make_baseline
from dense_descriptors_ros.evaluation.report import Report
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
