"""`dense-descriptors train --watch-bags DIR --publish-to NODE`: rounds of training as bags close in DIR, each
checkpoint that beats the published one pushed to a running descriptor_node, which swaps it in (real rclpy)."""

import os
import shutil
import threading

import pytest
import yaml
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from dense_descriptors_ros.cli.main import main
from dense_descriptors_ros.io.bag_writer import write_image_bag
from dense_descriptors_ros.io.closed_bags import closed_bags
from dense_descriptors_ros.model.checkpoint import model_id
from dense_descriptors_ros.nodes.descriptor_node import DescriptorNode
from dense_descriptors_ros.nodes.in_process_graph import wait_for
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video

TINY = {
    "model": {"backbone": "resnet18", "pretrained": False, "descriptor_dim": 8},
    "batch_size": 1,
    "image_height": 64,
    "image_width": 96,
    "val_points": 100,
    "masks": "motion",
    "epochs": 1,
    "steps_per_epoch": 1,
    "val_pairs": 1,
}


def _bag(folder, seed):
    video = textured_object_video(num_frames=6, height=64, width=96, seed=seed)
    return write_image_bag(folder, [(1.0 + 0.1 * k, f) for k, f in enumerate(video.frames)], storage="mcap")


def test_a_bag_counts_as_closed_once_its_files_stop_changing(tmp_path):
    old, new = _bag(tmp_path / "old", 1), _bag(tmp_path / "new", 2)
    (tmp_path / "notes.txt").write_text("not a bag")
    for path in old.rglob("*"):
        os.utime(path, (0, 100.0))
    assert closed_bags(tmp_path, settle=5.0, now=110.0) == [old]
    assert closed_bags(tmp_path, settle=0.0) == [old, new]


@pytest.mark.ros
def test_watch_bags_publishes_each_better_checkpoint_to_a_running_node(ros, tmp_path, capsys):
    overrides = [Parameter("model_dir", value="untrained"), Parameter("device", value="cpu")]
    node = ros.add(DescriptorNode("adapt_target", context=ros.context, parameter_overrides=overrides))
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    watch, out = tmp_path / "bags", tmp_path / "adapt"
    watch.mkdir()
    _bag(watch / "bag_1", 1)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))

    def record_second_bag():  # the recorder closes another bag while round 1 trains
        wait_for(lambda: (out / "round_001").is_dir(), timeout=120)
        shutil.move(_bag(tmp_path / "bag_2", 2), watch / "bag_2")

    recorder = threading.Thread(target=record_second_bag)
    recorder.start()
    command = ["train", "--config", str(tmp_path / "tiny.yaml"), "--watch-bags", str(watch), "--out", str(out)]
    command += ["--publish-to", "/adapt_target", "--device", "cpu", "--settle", "0", "--rounds", "2"]
    assert main(command) == 0
    recorder.join()

    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["round 1", "round 2"], lines
    assert "1 bag(s)" in lines[0] and "published before: inf), published" in lines[0]
    assert "2 bag(s)" in lines[1]
    last = "round_002" if "), published" in lines[1] else "round_001"
    assert wait_for(lambda: node.fingerprint == model_id(out / last / "best") and node._loading is None, timeout=60)
    assert node.engine.descriptor_dim == 8
    assert yaml.safe_load((out / "round_002" / "best" / "model.yaml").read_text())["provenance"]["adapt_round"] == 2
