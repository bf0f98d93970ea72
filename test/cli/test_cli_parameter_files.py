"""--params: the nodes' ROS 2 parameter files (config/*.yaml) read by the commands that do what the nodes do."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from dense_descriptors_ros.cli.frame_input import MODEL_OPTIONS
from dense_descriptors_ros.cli.main import main
from dense_descriptors_ros.cli.parameter_files import read_node_parameters, take_parameters
from dense_descriptors_ros.config import ConfigError
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_nodes_parameter_files_read_as_dotted_names():
    slam = read_node_parameters(REPO / "config" / "slam.yaml", "slam_node")
    assert slam["slam.feature_type"] == "learned" and slam["slam.tracking.min_inliers"] == 15
    assert slam["max_side"] == 640 and slam["map_dir"] == "slam_map"
    tracker = read_node_parameters(REPO / "config" / "tracker.yaml", "tracker_node")
    assert tracker["auto_points"] == 30 and tracker["patch_size"] == 5
    assert read_node_parameters(None, "tracker_node") == {}


def test_the_node_s_own_section_wins_over_the_wildcard(tmp_path):
    path = _write(
        tmp_path / "p.yaml",
        {
            "/camera/tracker_node": {"ros__parameters": {"device": "cpu", "slam": {"tracking": {"min_depth": 0.5}}}},
            "/**": {"ros__parameters": {"device": "cuda", "max_side": 320}},
            "/robot": {"descriptor_node": {"ros__parameters": {"max_side": 64}}},
        },
    )
    assert read_node_parameters(path, "tracker_node") == {
        "device": "cpu",
        "max_side": 320,
        "slam.tracking.min_depth": 0.5,
    }
    assert read_node_parameters(path, "descriptor_node") == {"device": "cuda", "max_side": 64}


def test_take_parameters_keeps_the_rest_for_the_log():
    params = {"device": "cpu", "slam.feature_type": "orb", "publish_tf": False}
    assert take_parameters(params, MODEL_OPTIONS) == {"device": "cpu"}
    assert params == {"slam.feature_type": "orb", "publish_tf": False}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"other_node": {"ros__parameters": {}}}, "no parameters for /\\*\\* or tracker_node"),
        ({"/**": {"ros__parameters": [1]}}, "/\\*\\*: ros__parameters must be a mapping"),
        ({"/**": 3}, "/\\*\\*: expected a mapping with 'ros__parameters'"),
        ([1, 2], "expected a mapping at the top level"),
    ],
)
def test_malformed_parameter_files_are_config_errors(tmp_path, content, message):
    with pytest.raises(ConfigError, match=message):
        read_node_parameters(_write(tmp_path / "p.yaml", content), "tracker_node")


def test_describe_reads_descriptor_node_parameters_and_options_override_them(tmp_path, caplog):
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0.png"), textured_object_video(1, 48, 64).frames[0])
    params = _write(
        tmp_path / "descriptors.yaml",
        {
            "descriptor_node": {
                "ros__parameters": {
                    "model_dir": "untrained",
                    "untrained_descriptor_dim": 6,
                    "device": "cpu",
                    "publish_viz": True,
                }
            }
        },
    )

    def dim(*extra: str) -> int:
        out = tmp_path / f"out{len(extra)}"
        assert main(["describe", str(frames), "--out", str(out), "--save-descriptors", *extra]) == 0
        return np.load(out / "000000_descriptors.npy").shape[-1]

    caplog.set_level("INFO")
    assert dim("--params", str(params)) == 6
    assert "node-only parameters, not used by this command: publish_viz" in caplog.text
    assert dim("--params", str(params), "--untrained-descriptor-dim", "3") == 3
    shipped = str(REPO / "config" / "descriptors.yaml")
    assert dim("--params", shipped, "--model", "untrained", "--untrained-descriptor-dim", "5") == 5
    assert dim("--params", shipped) == 32  # model_dir empty: the out-of-the-box model
