"""`dense-descriptors render object|stereo`: dataset folders with the scene config's options, and the one-line error
on a machine without the OpenGL driver the renderer needs."""

from __future__ import annotations

import pytest
import yaml

from dense_descriptors_ros.cli import render
from dense_descriptors_ros.cli.main import main
from dense_descriptors_ros.synthetic.gl_rasterizer import RendererUnavailable, renderer_available


@pytest.fixture
def with_renderer():
    available, reason = renderer_available()
    if not available:
        pytest.skip(f"no headless OpenGL renderer: {reason}")


def test_render_object_writes_a_dataset_with_the_given_settings(tmp_path, with_renderer):
    out = tmp_path / "object"
    argv = ["render", "object", "--out", str(out), "--frames", "3", "--width", "64", "--height", "48"]
    assert main([*argv, "--background", "noise", "--occlusion-passes", "0"]) == 0
    assert len(list((out / "rgb").glob("*.png"))) == 3
    config = yaml.safe_load((out / "meta.yaml").read_text())["config"]
    assert (config["background"], config["occlusion_passes"], config["n_frames"]) == ("noise", 0, 3)


def test_render_stereo_writes_pairs_and_calibration(tmp_path, with_renderer):
    out = tmp_path / "stereo"
    argv = ["render", "stereo", "--out", str(out), "--frames", "2", "--width", "64", "--height", "48"]
    assert main([*argv, "--baseline", "0.2", "--blocks", "0"]) == 0
    assert len(list((out / "left").glob("*.png"))) == 2 and (out / "calib.txt").is_file()


def test_without_opengl_render_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    def no_egl(*args, **kwargs):
        raise RendererUnavailable("no headless OpenGL context (EGL): libEGL.so.1 not found")

    monkeypatch.setattr(render, "write_object_dataset", no_egl)
    assert main(["render", "object", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "dense-descriptors render: error: no headless OpenGL context (EGL): libEGL.so.1 not found"
    ]


def test_scene_settings_are_checked_and_listed(tmp_path, capsys):
    assert main(["render", "stereo", "--out", str(tmp_path / "s"), "--baseline", "5"]) == 2
    assert capsys.readouterr().err.strip().endswith("--baseline: 5.0 is outside the allowed range [0.01, 2.0]")
    with pytest.raises(SystemExit):
        main(["render", "object", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--frames", "--seed", "--object", "--background", "--fov-deg", "--lighting-change"):
        assert f"{option} " in text, option


def test_render_lmo_without_the_dataset_is_one_line_naming_the_folder(tmp_path, capsys):
    assert main(["render", "lmo", "--out", str(tmp_path / "lmo"), "--data-dir", str(tmp_path / "nothing")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "dataset 'bop_lmo_scene2_100' not found at" in line and "DDR_DATA_DIR" in line
