"""`dense-descriptors slam` on folders of rectified stereo images: outputs, calibration files, and which setting
wins (command default < slam_node's --params file < --config < options)."""

from pathlib import Path

import cv2
import pytest
import yaml

from dense_descriptors_ros.cli.main import main
from dense_descriptors_ros.cli.slam import read_stereo_calibration
from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.trajectory import read_tum_trajectory
from dense_descriptors_ros.slam.map_io import read_ply
from dense_descriptors_ros.synthetic.box_room import synthetic_stereo_sequence

REPO = Path(__file__).resolve().parents[2]
CAMERA = StereoCamera(fx=260.0, fy=260.0, cx=159.5, cy=119.5, baseline=0.2, width=320, height=240)


@pytest.fixture(scope="module")
def stereo_folders(tmp_path_factory) -> list[str]:
    """``--left``, ``--right`` and ``--calib`` arguments of 12 frames along an arc of the synthetic box room."""
    folder = tmp_path_factory.mktemp("stereo")
    for side in ("left", "right"):
        (folder / side).mkdir()
        for i, frame in enumerate(synthetic_stereo_sequence(CAMERA, 12, turns=12 / 90)):
            cv2.imwrite(str(folder / side / f"{i:06d}.png"), getattr(frame, side))
    calib = folder / "calib.yaml"
    calib.write_text(yaml.safe_dump({"fx": 260.0, "fy": 260.0, "cx": 159.5, "cy": 119.5, "baseline": 0.2}))
    return ["--left", str(folder / "left"), "--right", str(folder / "right"), "--calib", str(calib)]


def _summary(out: Path) -> dict:
    return yaml.safe_load((out / "summary.yaml").read_text())


def test_slam_command_on_image_folders(stereo_folders, tmp_path):
    out = tmp_path / "out"
    assert main(["slam", *stereo_folders, "--out", str(out), "--features", "orb", "--fps", "10"]) == 0
    summary = _summary(out)
    assert summary["frames"] == 12 and summary["lost"] == 0 and summary["model_id"] == "orb"
    assert len(read_tum_trajectory(out / "trajectory_tum.txt")) == 12
    assert (out / "map" / "map.npz").is_file() and len(read_ply(out / "map.ply")) > 100


def test_read_stereo_calibration(tmp_path):
    kitti = tmp_path / "calib.txt"
    kitti.write_text(
        "P0: 718.856 0 607.1928 0 0 718.856 185.2157 0 0 0 1 0\n"
        "P1: 718.856 0 607.1928 -386.1448 0 718.856 185.2157 0 0 0 1 0\n"
    )
    camera = read_stereo_calibration(kitti, 1241, 376)
    assert camera.baseline == pytest.approx(0.5372, abs=1e-4) and camera.fx == 718.856
    calib = tmp_path / "calib.yaml"
    calib.write_text(yaml.safe_dump({"fx": 1.0}))
    with pytest.raises(ValueError, match="missing key"):
        read_stereo_calibration(calib, 320, 240)


def test_the_config_file_s_feature_type_is_kept_without_features_option(stereo_folders, tmp_path):
    # Regression: the --features default used to overwrite the --config file's feature_type.
    config = tmp_path / "slam.yaml"
    config.write_text("feature_type: orb\n")
    out = tmp_path / "out"
    assert main(["slam", *stereo_folders, "--out", str(out), "--config", str(config), "--device", "cpu"]) == 0
    assert _summary(out)["model_id"] == "orb"


def test_params_file_sets_slam_settings_and_options_override_it(stereo_folders, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    node_section = {"model_dir": "", "device": "cpu", "slam": {"feature_type": "orb", "tracking": {"min_inliers": 20}}}
    params.write_text(
        yaml.safe_dump(
            {"/**": {"ros__parameters": {"publish_tf": False}}, "slam_node": {"ros__parameters": node_section}}
        )
    )
    out = tmp_path / "from_params"
    assert main(["slam", *stereo_folders, "--out", str(out), "--params", str(params)]) == 0
    assert _summary(out)["model_id"] == "orb"
    # The options win over the file: learned features, so the (missing) checkpoint is opened although the file
    # says orb.
    argv = [*stereo_folders, "--out", str(tmp_path / "learned"), "--params", str(params), "--features", "learned"]
    assert main(["slam", *argv, "--model", str(tmp_path / "no_model")]) == 2
    assert "checkpoint folder not found" in capsys.readouterr().err
    # A range error in the file names the file and the parameter.
    params.write_text(yaml.safe_dump({"slam_node": {"ros__parameters": {"slam": {"tracking": {"min_inliers": 2}}}}}))
    assert main(["slam", *stereo_folders, "--out", str(tmp_path / "bad"), "--params", str(params)]) == 2
    assert f"{params}: tracking.min_inliers: 2 is outside the allowed range" in capsys.readouterr().err


def test_the_nodes_own_parameter_file_runs(stereo_folders, tmp_path):
    out = tmp_path / "out"
    argv = [*stereo_folders, "--out", str(out), "--params", str(REPO / "config" / "slam.yaml"), "--features", "orb"]
    assert main(["slam", *argv]) == 0
    assert _summary(out)["frames"] == 12
