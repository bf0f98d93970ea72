"""`dense-descriptors slam`: run StereoSlam on folders of rectified stereo images and write trajectory and map.

    dense-descriptors slam --left DIR --right DIR --calib FILE --out DIR [--features learned|orb] [--model DIR]
                           [--params config/slam.yaml] [--config FILE] [--tracking.min-inliers N ...]

``--calib`` is a KITTI ``calib.txt`` (rows ``P0:`` and ``P1:``, 12 numbers each; the baseline is -P1[0,3] / P1[0,0])
or a YAML file with ``fx, fy, cx, cy, baseline`` (metres). Timestamps come from ``--times`` (one per row, KITTI
``times.txt``), else from the file names when they are numbers (TUM style), else from ``--fps``. Images are
streamed, so long sequences do not have to fit in memory. Outputs: ``trajectory_tum.txt``,
``trajectory_kitti.txt``, ``map/`` (map.npz + map.yaml, reloadable), ``map.ply`` (voxel-downsampled cloud) and
``summary.yaml``.

Settings, each overriding the one before: the command's defaults (descriptors at full resolution), slam_node's
parameter file (``--params``: the model parameters and the ``slam`` section), a StereoSlamConfig YAML
(``--config``), then the options on the command line.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from dense_descriptors_ros.cli.config_options import ConfigOptions
from dense_descriptors_ros.cli.frame_input import MODEL_OPTIONS as FRAME_MODEL_OPTIONS
from dense_descriptors_ros.cli.parameter_files import (
    add_params_argument,
    config_file_values,
    log_unused_parameters,
    read_node_parameters,
    take_parameters,
)
from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.trajectory import write_trajectory
from dense_descriptors_ros.io.atomic_files import atomic_write_text
from dense_descriptors_ros.io.frame_sources import ImageFolderFrameSource
from dense_descriptors_ros.model.descriptor_source import model_fingerprint, open_engine
from dense_descriptors_ros.slam.map_io import voxel_downsample, write_ply
from dense_descriptors_ros.slam.stereo_slam import StereoSlam, StereoSlamConfig, TrackingState

log = logging.getLogger(__name__)
# SLAM samples descriptors at sub-pixel keypoints, so the network runs at full resolution unless told otherwise.
MODEL_OPTIONS = replace(FRAME_MODEL_OPTIONS, defaults={"max_side": 0})
SLAM_OPTIONS = ConfigOptions(StereoSlamConfig, names={"feature_type": "features"})


def read_stereo_calibration(path: str | Path, width: int, height: int) -> StereoCamera:
    """A rectified rig from a KITTI calib.txt (P0/P1) or a YAML file with fx, fy, cx, cy, baseline."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file not found: {path}")
    if path.suffix in (".yaml", ".yml"):
        data = yaml.safe_load(path.read_text()) or {}
        missing = [k for k in ("fx", "fy", "cx", "cy", "baseline") if k not in data]
        if missing:
            raise ValueError(f"{path}: missing key(s) {missing}; expected fx, fy, cx, cy, baseline (metres)")
        return StereoCamera(
            float(data["fx"]),
            float(data["fy"]),
            float(data["cx"]),
            float(data["cy"]),
            float(data["baseline"]),
            width,
            height,
        )
    rows = {}
    for line in path.read_text().splitlines():
        if ":" in line:
            key, values = line.split(":", 1)
            rows[key.strip()] = np.array(values.split(), dtype=np.float64)
    if "P0" not in rows or "P1" not in rows or len(rows["P0"]) != 12 or len(rows["P1"]) != 12:
        raise ValueError(f"{path}: expected KITTI rows 'P0:' and 'P1:' with 12 numbers each")
    return StereoCamera.from_projections(rows["P0"], rows["P1"], width, height)


def add_slam_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--left", required=True, help="folder of rectified left images")
    parser.add_argument("--right", required=True, help="folder of rectified right images (same count)")
    parser.add_argument("--calib", required=True, help="KITTI calib.txt (P0, P1) or YAML (fx fy cx cy baseline)")
    parser.add_argument("--out", required=True, help="output folder")
    add_params_argument(parser, "slam_node")
    parser.add_argument("--config", default=None, help="YAML with StereoSlamConfig settings")
    parser.add_argument("--times", default=None, help="timestamps file, one per frame (KITTI times.txt)")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate when there is no --times")
    parser.add_argument("--voxel", type=float, default=0.05, help="voxel size (m) of the exported cloud")
    MODEL_OPTIONS.add_to(parser, "network (learned features)")
    SLAM_OPTIONS.add_to(parser, "SLAM (slam_node's slam.* parameters; --features is slam.feature_type)")


def run_slam(args: argparse.Namespace) -> int:
    params = read_node_parameters(args.params, "slam_node")
    sources = [(args.params, take_parameters(params, SLAM_OPTIONS, prefix="slam."))]
    if args.config:
        sources.append((args.config, config_file_values(StereoSlamConfig, args.config)))
    config = SLAM_OPTIONS.build(args, *sources)
    model = MODEL_OPTIONS.build(args, (args.params, take_parameters(params, MODEL_OPTIONS)))
    log_unused_parameters(args.params, params)
    left = ImageFolderFrameSource(args.left, fps=args.fps)
    right = ImageFolderFrameSource(args.right, fps=args.fps)
    count = len(left.files)
    if count == 0 or count != len(right.files):
        raise ValueError(f"need the same, non-zero number of left and right images, got {count} and {len(right.files)}")
    stamps = None
    if args.times:
        stamps = np.loadtxt(args.times, ndmin=1).tolist()
        if len(stamps) != count:
            raise ValueError(f"{args.times}: {len(stamps)} timestamps for {count} frames")
    height, width = cv2.imread(str(left.files[0]), cv2.IMREAD_UNCHANGED).shape[:2]
    camera = read_stereo_calibration(args.calib, width, height)
    descriptor_fn, slam_model_id = None, "orb"
    if config.needs_descriptor_image:
        engine = open_engine(model, log)
        descriptor_fn = engine.compute
        slam_model_id = model_fingerprint(model)
    slam = StereoSlam(camera, config, model_id=slam_model_id, descriptor_fn=descriptor_fn)
    states = []
    try:
        pairs = zip(left, right, strict=True)
        for index, ((stamp, l_img), (_, r_img)) in enumerate(tqdm(pairs, total=count, desc="slam", unit="frame")):
            stamp = stamps[index] if stamps is not None else stamp
            states.append(slam.process(float(stamp), l_img, r_img).state)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        slam.wait_for_mapping(timeout=60.0)  # the last BA and loop correction belong in the trajectory
        trajectory = slam.trajectory()
        write_trajectory(trajectory, out / "trajectory_tum.txt", "tum")
        write_trajectory(trajectory, out / "trajectory_kitti.txt", "kitti")
        slam.save_map(out / "map")
        write_ply(out / "map.ply", voxel_downsample(slam.map_points(), args.voxel))
        summary = {
            "frames": len(states),
            "tracked": sum(s in (TrackingState.TRACKING, TrackingState.RELOCALIZED) for s in states),
            "lost": sum(s == TrackingState.LOST for s in states),
            "keyframes": len(slam.map.keyframes) if slam.map else 0,
            "map_points": len(slam.map_points()),
            "path_length_m": float(trajectory.path_length()) if len(trajectory) else 0.0,
            "tracking_ms_per_frame": float(np.mean(slam.tracking_ms)),
            "model_id": slam_model_id,
        }
        atomic_write_text(out / "summary.yaml", yaml.safe_dump(summary, sort_keys=False))
        log.info(
            "slam: %d frames, %d lost, %d keyframes -> %s",
            summary["frames"],
            summary["lost"],
            summary["keyframes"],
            out,
        )
    finally:
        slam.close()
    return 0
