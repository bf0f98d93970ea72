"""`dense-descriptors track`: track points through a video, image folder or rosbag2 without ROS.

Writes ``tracks.csv`` (one row per track and frame) and an annotated video ``tracks.mp4`` (or PNG frames with
``--png``) into the output folder. Queries are given with ``--points x,y ...`` in pixels of the first frame, or
chosen automatically (``--auto-points N`` distinctive points spread over the first frame).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import logging
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dense_descriptors_ros.cli.config_options import ConfigOptions
from dense_descriptors_ros.cli.frame_input import add_frame_input_arguments, open_frames_and_engine
from dense_descriptors_ros.cli.parameter_files import (
    add_params_argument,
    config_file_values,
    read_node_parameters,
    take_parameters,
)
from dense_descriptors_ros.io.atomic_files import atomic_path
from dense_descriptors_ros.tracking.point_tracker import PointTracker
from dense_descriptors_ros.tracking.track_drawing import TrackDrawer
from dense_descriptors_ros.tracking.tracker_config import TrackerConfig

log = logging.getLogger(__name__)
CSV_COLUMNS = ("frame", "stamp", "id", "x", "y", "score", "visible", "redetected")
# Without --points the command picks 50 points by itself (the tracker's own default, 0, waits for queries).
TRACKER_OPTIONS = ConfigOptions(TrackerConfig, defaults={"auto_points": 50})


def parse_point(text: str) -> tuple[float, float]:
    """'x,y' -> (x, y); argparse type for --points."""
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a point as x,y (pixels), got {text!r}") from None
    return x, y


def add_track_arguments(parser: argparse.ArgumentParser) -> None:
    add_frame_input_arguments(parser)
    parser.add_argument("--out", required=True, help="output folder (tracks.csv and tracks.mp4 or PNG frames)")
    parser.add_argument(
        "--points", type=parse_point, nargs="+", default=None, metavar="X,Y", help="query points in the first frame"
    )
    add_params_argument(parser, "tracker_node")
    parser.add_argument("--tracker-config", default=None, help="YAML file with TrackerConfig fields")
    parser.add_argument("--png", action="store_true", help="write annotated PNG frames instead of tracks.mp4")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of tracks.mp4")
    TRACKER_OPTIONS.add_to(parser, "tracker (--auto-points is used when --points is absent)")


def _tracker_config(args: argparse.Namespace, params: dict) -> TrackerConfig:
    sources = [(args.params, take_parameters(params, TRACKER_OPTIONS))]
    if args.tracker_config:
        sources.append((args.tracker_config, config_file_values(TrackerConfig, args.tracker_config)))
    config = TRACKER_OPTIONS.build(args, *sources)
    if args.points is None and config.auto_points < 1:
        raise ValueError(f"--auto-points must be >= 1 when no --points are given, got {config.auto_points}")
    return config


class _AnnotatedOutput:
    """Annotated frames as one mp4 (cv2.VideoWriter, mp4v) or as numbered PNG files, each written under a
    temporary name and renamed when complete (the mp4 when the run ends without an error)."""

    def __init__(self, folder: Path, png: bool, fps: float) -> None:
        self.folder, self.png, self.fps = folder, png, fps
        self.writer: cv2.VideoWriter | None = None
        self.count = 0
        self._files = contextlib.ExitStack()
        self._mp4 = None if png else self._files.enter_context(atomic_path(folder / "tracks.mp4"))

    def write(self, rgb: np.ndarray) -> None:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if self.png:
            with atomic_path(self.folder / f"{self.count:06d}_tracks.png") as tmp:
                if not cv2.imwrite(str(tmp), bgr):
                    raise OSError(f"could not write PNG frames into {self.folder}")
        else:
            if self.writer is None:
                self.writer = cv2.VideoWriter(
                    str(self._mp4), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, bgr.shape[1::-1]
                )
                if not self.writer.isOpened():
                    raise OSError(f"OpenCV cannot write {self.folder / 'tracks.mp4'}; use --png")
            self.writer.write(bgr)
        self.count += 1

    def __enter__(self) -> _AnnotatedOutput:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.writer is not None:
            self.writer.release()
        self._files.__exit__(*exc_info)


def run_track(args: argparse.Namespace) -> int:
    params = read_node_parameters(args.params, "tracker_node")
    config = _tracker_config(args, params)
    source, engine = open_frames_and_engine(args, params, log)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tracker = PointTracker(config)
    drawer = TrackDrawer()
    if args.fps <= 0:
        raise ValueError(f"--fps must be > 0, got {args.fps}")
    stamps: list[float] = []
    # tracks.csv and the video replace the previous run's only when this one succeeds.
    with (
        atomic_path(out / "tracks.csv") as csv_path,
        csv_path.open("w", newline="") as handle,
        _AnnotatedOutput(out, args.png, args.fps) as video,
    ):
        rows = csv.writer(handle)
        rows.writerow(CSV_COLUMNS)
        for index, (stamp, rgb) in enumerate(tqdm(source, desc="track", unit="frame")):
            descriptors, stride = engine.compute_map(rgb)
            if index == 0 and args.points is not None:
                tracker.add_queries(descriptors, np.array(args.points, np.float32), stride)
                frame = tracker.frame()
            else:
                frame = tracker.update(descriptors, stride=stride)
            for i, track_id in enumerate(frame.ids):
                x, y = frame.positions[i]
                visible, redetected, score = int(frame.visible[i]), int(frame.redetected[i]), frame.scores[i]
                rows.writerow(
                    [index, f"{stamp:.6f}", int(track_id), f"{x:.2f}", f"{y:.2f}", f"{score:.4f}", visible, redetected]
                )
            stamps.append(stamp)
            video.write(drawer.draw(rgb, frame))
        if not stamps:
            raise ValueError(f"{source.describe()}: no frames selected")
    log.info("tracked %d point(s) over %d frame(s); wrote %s", tracker.num_tracks, len(stamps), out)
    return 0
