"""The main job end to end, reduced in size: render -> recorder_node -> train -> tracker_node -> report.

The same code as `make demo` (dense-descriptors demo), with fewer frames and training steps.
"""

import json
from argparse import Namespace

import pytest

from dense_descriptors_ros.cli.demo import run_demo

pytestmark = pytest.mark.ros


def test_demo_pipeline_outputs_and_trained_beats_untrained(tmp_path):
    out = tmp_path / "demo"
    code = run_demo(Namespace(out=str(out), size="ci", seed=0, object="drill"))
    figures = json.loads((out / "report" / "figures.json").read_text())
    for path in [
        "result.png",
        "training/best/weights.pt",
        "training/best/model.yaml",
        "training/loss_curve.png",
        "tracking/tracked_points.mp4",
        "tracking/tracks.csv",
        "report/report.md",
        "report/evaluation.png",
        "outputs_bag/metadata.yaml",
    ]:
        assert (out / path).is_file(), path
    assert any((out / "recording").iterdir())
    assert figures["mean_error_percentile_trained"] < figures["mean_error_percentile_untrained"], figures
    assert figures["trained_beats_untrained"] and code == 0
    lines = (out / "tracking" / "tracks.csv").read_text().splitlines()
    assert lines[0] == "frame,id,x,y,visible,score" and len(lines) > 20

    from dense_descriptors_ros.io.frame_sources import open_frame_source

    # The outputs bag replays: its annotated images read back as frames.
    frames = open_frame_source(out / "outputs_bag", topic="/tracks/image").read_all()
    assert len(frames) == figures["held_out_frames"]
