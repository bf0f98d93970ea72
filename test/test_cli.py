"""`dense-descriptors` subcommands that belong to the foundation: describe, export, --help, clear errors."""

import cv2
import pytest

from dense_descriptors_ros.cli import build_parser, main
from dense_descriptors_ros.model.checkpoint import save_checkpoint
from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video


@pytest.fixture
def model_dir(tmp_path):
    net = DescriptorNet(ModelConfig(descriptor_dim=4, pretrained=False))
    return save_checkpoint(tmp_path / "model", net)


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for name in ("demo", "train", "evaluate", "render", "track", "slam", "describe", "export"):
        assert name in text


def test_describe_writes_colouring_and_descriptors(tmp_path, model_dir):
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    for i, frame in enumerate(textured_object_video(3, 60, 80).frames):
        cv2.imwrite(str(frames_dir / f"{i:03d}.png"), frame[..., ::-1])
    out = tmp_path / "out"
    args = [str(frames_dir), "--out", str(out), "--model", str(model_dir), "--save-descriptors"]
    assert main(["describe", *args]) == 0
    assert len(list(out.glob("*_viz.png"))) == 3
    import numpy as np

    desc = np.load(out / "000000_descriptors.npy")
    assert desc.shape == (60, 80, 4)
    assert cv2.imread(str(out / "000000_viz.png")).shape == (60, 160, 3)


def test_describe_missing_input_is_one_line_error(tmp_path, caplog):
    assert main(["describe", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "nothing" in caplog.text


def test_export_writes_onnx_that_matches(tmp_path, model_dir, capsys):
    assert (
        main(
            ["export", "--model", str(model_dir), "--out", str(tmp_path / "m.onnx"), "--height", "64", "--width", "64"]
        )
        == 0
    )
    assert (tmp_path / "m.onnx").is_file()
    assert "max abs diff" in capsys.readouterr().out


def test_export_of_a_broken_checkpoint_is_a_clear_error(tmp_path, caplog):
    (tmp_path / "bad").mkdir()
    assert main(["export", "--model", str(tmp_path / "bad")]) == 2
    assert "model.yaml: missing" in caplog.text
