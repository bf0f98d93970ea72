"""`dense-descriptors track`: tracks.csv and annotated frames; settings from tracker_node's parameter file."""

import csv
from pathlib import Path

import cv2
import pytest

from dense_descriptors_ros.cli.main import main
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    for t, frame in enumerate(textured_object_video(4, 96, 128, seed=2).frames):
        cv2.imwrite(str(folder / f"{t:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "tracks.csv") as handle:
        return list(csv.DictReader(handle))


def test_track_command_writes_csv_and_annotated_frames(tmp_path, frames_dir, capsys):
    out = tmp_path / "out"
    argv = [str(frames_dir), "--out", str(out), "--device", "cpu", "--png", "--points", "20,30", "40.5,32"]
    assert main(["track", *argv]) == 0
    rows = _rows(out)
    assert len(rows) == 8  # 2 tracks x 4 frames
    assert [int(r["id"]) for r in rows[:2]] == [0, 1]
    assert float(rows[1]["x"]) == pytest.approx(40.5)
    assert len(list(out.glob("*_tracks.png"))) == 4
    with pytest.raises(SystemExit) as exit_info:
        main(["track", str(frames_dir), "--out", str(out), "--points", "20;30"])
    assert exit_info.value.code == 2 and "expected a point as x,y" in capsys.readouterr().err


def test_auto_points_come_from_the_params_file_unless_given(tmp_path, frames_dir, capsys):
    def track_count(*extra: str) -> int:
        out = tmp_path / f"out{len(extra)}"
        assert main(["track", str(frames_dir), "--out", str(out), "--device", "cpu", "--png", *extra]) == 0
        return len({r["id"] for r in _rows(out)})

    assert track_count() == 50  # the command's own default
    params = ["--params", str(REPO / "config" / "tracker.yaml")]
    assert track_count(*params) == 30  # auto_points: 30 in config/tracker.yaml
    assert track_count(*params, "--auto-points", "12") == 12
    assert main(["track", str(frames_dir), "--out", str(tmp_path / "o"), *params, "--auto-points", "0"]) == 2
    assert "--auto-points must be >= 1" in capsys.readouterr().err


def test_a_bad_value_in_the_params_file_names_file_and_parameter(tmp_path, frames_dir, capsys):
    params = tmp_path / "tracker.yaml"
    params.write_text("tracker_node:\n  ros__parameters:\n    search_radius: 500\n")
    assert main(["track", str(frames_dir), "--out", str(tmp_path / "o"), "--params", str(params)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"dense-descriptors track: error: {params}: search_radius: 500 is outside the allowed range [1, 128]"
    )


def test_a_failing_run_into_an_existing_out_keeps_the_previous_results(tmp_path, frames_dir, capsys):
    out = tmp_path / "out"
    assert main(["track", str(frames_dir), "--out", str(out), "--device", "cpu", "--points", "20,30"]) == 0
    before = (out / "tracks.csv").read_text()
    video = (out / "tracks.mp4").read_bytes()
    # The query lies outside the 128x96 frames: the run fails on its first frame.
    assert main(["track", str(frames_dir), "--out", str(out), "--device", "cpu", "--points", "500,500"]) == 2
    assert "outside" in capsys.readouterr().err
    assert (out / "tracks.csv").read_text() == before
    assert (out / "tracks.mp4").read_bytes() == video
    assert sorted(p.name for p in out.iterdir()) == ["tracks.csv", "tracks.mp4"]  # no temporary files left
