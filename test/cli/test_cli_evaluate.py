"""`dense-descriptors evaluate <suite>`: each suite end to end on a tiny generated dataset (HPatches-, DAVIS-like
folders, rendered videos), its options generated from SuiteSettings, and what a missing dataset or bad input gives."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dense_descriptors_ros.cli.config_options import config_leaves
from dense_descriptors_ros.cli.main import main
from dense_descriptors_ros.evaluation.suites.settings import SuiteSettings


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
    argv = [
        "evaluate",
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
    ]
    assert main(argv) == 0
    figures = json.loads((out / "figures.json").read_text())["figures"]["hpatches"]
    assert set(figures) == {"raw_colour", "orb"}
    assert figures["raw_colour"]["pck@1"] > 0.9 and figures["raw_colour"]["error_percentile"] < 1.0
    assert (out / "hpatches_v_churchill_error_cdf.png").is_file()
    assert "| raw_colour |" in (out / "report.md").read_text()


def test_evaluate_skips_missing_data(tmp_path):
    argv = ["evaluate", "sintel", "--baselines", "raw_colour", "--data-dir", str(tmp_path), "--out", str(tmp_path)]
    assert main(argv) == 3


def test_bad_settings_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["evaluate", "hpatches", "--baselines", "surf", "--out", str(tmp_path)]) == 2
    assert "unknown baselines ['surf']" in capsys.readouterr().err
    assert main(["evaluate", "rendered", "--render-frames", "2", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == ["dense-descriptors evaluate: error: --render-frames: 2 is outside the allowed range [4, 100000]"]
    assert main(["evaluate", "rendered", "--backgrounds", "photo", "--out", str(tmp_path)]) == 2
    assert "needs exactly two names" in capsys.readouterr().err


def test_every_suite_setting_is_an_option(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for path, spec in config_leaves(SuiteSettings):
        assert f"--{path.replace('_', '-')} " in text, path
        assert " ".join(spec.help.split()) in text, path


def test_evaluate_rendered_protocols(tmp_path):
    """papers/000 tests 1-4 on a tiny rendered drill video pair, raw colour only (skips without OpenGL)."""
    out = tmp_path / "report"
    argv = [
        "evaluate",
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
    ]
    code = main(argv)
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
    argv = [
        "evaluate",
        "davis",
        "--baselines",
        "raw_colour",
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(out),
        "--propagation.radius",
        "4",
        "--propagation.context-frames",
        "2",
    ]
    assert main(argv) == 0
    figures = json.loads((out / "figures.json").read_text())["figures"]["davis"]["raw_colour"]
    assert figures["sequences"]["square"]["frames"] == 3
    assert figures["J_mean"] > 0.6 and 0.0 <= figures["F_mean"] <= 1.0
    assert "CRW protocol: top-k 10, radius 4.0" in (out / "report.md").read_text()
