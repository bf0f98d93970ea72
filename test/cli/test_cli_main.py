"""`dense-descriptors`: every subcommand and option in --help, the one error path (one line on stderr, exit 2),
and the describe and export commands."""

import cv2
import numpy as np
import pytest

from dense_descriptors_ros.cli.main import SUBCOMMANDS, build_parser, main, omp_wait_policy_option
from dense_descriptors_ros.config import config_leaves
from dense_descriptors_ros.model.checkpoint import save_checkpoint
from dense_descriptors_ros.model.descriptor_source import DescriptorSourceConfig
from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig
from dense_descriptors_ros.slam.stereo_slam import StereoSlamConfig
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video
from dense_descriptors_ros.tracking.tracker_config import TrackerConfig


@pytest.fixture
def model_dir(tmp_path):
    net = DescriptorNet(ModelConfig(descriptor_dim=4, pretrained=False))
    return save_checkpoint(tmp_path / "model", net)


@pytest.fixture
def frames_dir(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(textured_object_video(3, 60, 80).frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame[..., ::-1])
    return folder


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def _error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for name in ("demo", "train", "evaluate", "render", "track", "slam", "describe", "export"):
        assert name in text
    for name in SUBCOMMANDS:
        assert f"usage: dense-descriptors {name}" in _help(capsys, name)


@pytest.mark.parametrize(
    ("command", "configs"),
    [
        ("track", (DescriptorSourceConfig, TrackerConfig)),
        ("describe", (DescriptorSourceConfig,)),
        ("slam", (DescriptorSourceConfig, StereoSlamConfig)),
    ],
)
def test_help_documents_every_config_field(capsys, command, configs):
    text = _help(capsys, command)
    assert "--params FILE" in text
    renamed = {"model_dir": "--model", "feature_type": "--features"}
    for cls in configs:
        for path, spec in config_leaves(cls):
            option = renamed.get(path, "--" + path.replace("_", "-"))
            assert f"{option} " in text or f"{option}," in text, option
            assert " ".join(spec.help.split()) in text, path


def test_describe_writes_colouring_and_descriptors(tmp_path, model_dir, frames_dir):
    out = tmp_path / "out"
    args = [str(frames_dir), "--out", str(out), "--model", str(model_dir), "--save-descriptors"]
    assert main(["describe", *args]) == 0
    assert len(list(out.glob("*_viz.png"))) == 3
    desc = np.load(out / "000000_descriptors.npy")
    assert desc.shape == (60, 80, 4)
    assert cv2.imread(str(out / "000000_viz.png")).shape == (60, 160, 3)


def test_bad_input_is_one_line_on_stderr_and_exit_2(tmp_path, frames_dir, capsys):
    assert main(["describe", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    line = _error_line(capsys)
    assert line.startswith("dense-descriptors describe: error: ") and "nothing" in line
    assert main(["describe", str(frames_dir), "--out", str(tmp_path / "o"), "--max-side", "9000"]) == 2
    assert _error_line(capsys) == (
        "dense-descriptors describe: error: --max-side: 9000 is outside the allowed range [0, 8192]"
    )
    assert main(["track", str(frames_dir), "--out", str(tmp_path / "o"), "--subpixel", "cubic"]) == 2
    assert _error_line(capsys).endswith("error: --subpixel: 'cubic' is not one of ['parabola', 'softargmax', 'none']")
    assert main(["describe", str(frames_dir), "--out", str(tmp_path / "o"), "--params", str(tmp_path / "p.yaml")]) == 2
    assert _error_line(capsys).endswith(f"error: parameter file not found: {tmp_path / 'p.yaml'}")


def test_export_writes_onnx_that_matches(tmp_path, model_dir, capsys):
    argv = ["export", "--model", str(model_dir), "--out", str(tmp_path / "m.onnx"), "--height", "64", "--width", "64"]
    assert main(argv) == 0
    assert (tmp_path / "m.onnx").is_file()
    assert "max abs diff" in capsys.readouterr().out


def test_export_of_a_broken_checkpoint_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "bad").mkdir()
    assert main(["export", "--model", str(tmp_path / "bad")]) == 2
    assert "model.yaml: missing" in _error_line(capsys)


def test_wait_policy_option_is_read_before_the_subcommands_import_torch():
    assert omp_wait_policy_option(["track", "--omp-wait-policy", "active", "in.mp4"]) == "active"
    assert omp_wait_policy_option(["track", "--omp-wait-policy=passive"]) == "passive"
    assert omp_wait_policy_option(["track", "--omp-wait-policy", "spin"]) is None  # argparse reports it
    assert omp_wait_policy_option(["track", "in.mp4"]) is None
