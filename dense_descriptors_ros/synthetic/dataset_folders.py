"""Rendered dataset folders: a rendered object or stereo sequence is written to a folder once, then reused.

A folder counts as complete when its ``meta.yaml`` names the format; ``write_*_dataset`` loads it instead of rendering
again when the folder was made with the same configuration, and replaces it otherwise.

Object folders (``write_object_dataset``): ``rgb/NNNNNN.png``, ``mask/NNNNNN.png`` (255 on the target object; for
``train --masks``), ``background.png``, ``ground_truth.npz`` (depth, instance ids, poses, K, lights), ``meta.yaml``.

Stereo folders (``write_stereo_dataset``)::

    seq = write_stereo_dataset("/tmp/room_seed0", seed=0, n_frames=240)   # rendered once, then reused

``left/`` and ``right/NNNNNN.png``, ``ground_truth.npz`` (depths, T_world_left poses, timestamps, K, baseline),
``poses_tum.txt`` and ``poses_kitti.txt`` (left camera, relative to the first frame, optical axes), KITTI
``times.txt`` and ``calib.txt`` (P0, P1), ROS ``left.yaml`` / ``right.yaml`` camera_info files and ``meta.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from dense_descriptors_ros.config import from_mapping, to_mapping
from dense_descriptors_ros.geometry.trajectory import write_kitti_poses, write_tum_trajectory
from dense_descriptors_ros.synthetic.object_renderer import ObjectSceneConfig, ObjectSequence, render_object_sequence
from dense_descriptors_ros.synthetic.stereo_renderer import StereoSceneConfig, StereoSequence, render_stereo_sequence

OBJECT_DATASET_FORMAT = "dense_descriptors_ros rendered object sequence v1"
STEREO_DATASET_FORMAT = "dense_descriptors_ros rendered stereo sequence v1"


def read_dataset_meta(folder: Path, expected_format: str) -> dict | None:
    """meta.yaml of a rendered dataset folder if it has the expected format, else None."""
    meta_path = Path(folder) / "meta.yaml"
    if not meta_path.is_file():
        return None
    try:
        meta = yaml.safe_load(meta_path.read_text())
    except yaml.YAMLError:
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == expected_format else None


def _made_with(folder: Path, expected_format: str, config: Any) -> bool:
    """Whether ``folder`` holds a complete dataset of this format rendered with this configuration."""
    meta = read_dataset_meta(folder, expected_format)
    return meta is not None and meta.get("config") == to_mapping(config)


def _existing_meta(folder: Path, expected_format: str, kind: str) -> dict:
    """meta.yaml of a complete dataset folder, or FileNotFoundError naming the folder and the format."""
    meta = read_dataset_meta(folder, expected_format)
    if meta is None:
        raise FileNotFoundError(f"{folder}: no rendered {kind} dataset (meta.yaml of {expected_format!r})")
    return meta


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB or single-channel uint8 image as PNG (raises OSError when it cannot)."""
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    # Level 1: twice as fast as the default for files only ~3% larger.
    if not cv2.imwrite(str(path), pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"could not write {path}")


def read_png(path: Path) -> np.ndarray:
    """Read a PNG as RGB uint8."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"image missing or unreadable: {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_frames(folder: Path, images: np.ndarray) -> None:
    """``images`` as folder/NNNNNN.png, replacing whatever PNGs were there."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    for t, image in enumerate(images):
        write_png(folder / f"{t:06d}.png", image)


def read_frames(folder: Path, count: int) -> np.ndarray:
    """The first ``count`` images written by write_frames, stacked."""
    return np.stack([read_png(folder / f"{t:06d}.png") for t in range(count)])


def write_object_dataset(
    folder: str | Path, seed: int = 0, n_frames: int = 200, progress: bool = True, **options: Any
) -> ObjectSequence:
    """Render a sequence into ``folder`` (rgb/ and mask/NNNNNN.png, background.png, ground_truth.npz, meta.yaml) and
    return it.

    ``options`` are further ObjectSceneConfig fields. When the folder already holds a dataset made with the same
    parameters it is loaded instead of rendered again; other contents of a folder with different parameters are
    replaced.
    """
    folder = Path(folder)
    config = from_mapping(ObjectSceneConfig, {**options, "seed": seed, "n_frames": n_frames})
    if _made_with(folder, OBJECT_DATASET_FORMAT, config):
        seq = load_object_dataset(folder)
        if len(list((folder / "mask").glob("*.png"))) != len(seq):  # folders written before masks were added
            write_frames(folder / "mask", seq.masks.astype(np.uint8) * 255)
        return seq
    seq = render_object_sequence(config, progress=progress)
    (folder / "meta.yaml").unlink(missing_ok=True)  # an interrupted write must not look complete
    write_frames(folder / "rgb", seq.rgb)
    write_frames(folder / "mask", seq.masks.astype(np.uint8) * 255)
    write_png(folder / "background.png", seq.background)
    np.savez_compressed(
        folder / "ground_truth.npz",
        depth=seq.depth,
        instance_ids=seq.instance_ids,
        poses=seq.poses,
        K=seq.K,
        lights=seq.lights,
    )
    meta = {
        "format": OBJECT_DATASET_FORMAT,
        "config": to_mapping(config),
        "frames": len(seq),
        "width": seq.width,
        "height": seq.height,
        "K": seq.K.tolist(),
        "instances": dict(zip(range(1, len(seq.instance_names) + 1), seq.instance_names, strict=True)),
        "files": {
            "rgb": "rgb/NNNNNN.png (uint8 RGB)",
            "mask": "mask/NNNNNN.png (uint8, 255 where the target object is visible; for train --masks)",
            "ground_truth.npz": "depth (T,H,W) float32 camera z in m, 0 = background; instance_ids (T,H,W) uint8 "
            "0 background 1 target 2 occluder; poses (T,2,4,4) T_cam_obj; K (3,3); "
            "lights (T,7) direction, colour gain, ambient",
        },
    }
    (folder / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return seq


def load_object_dataset(folder: str | Path) -> ObjectSequence:
    """Load a folder written by write_object_dataset."""
    folder = Path(folder)
    meta = _existing_meta(folder, OBJECT_DATASET_FORMAT, "object")
    config = from_mapping(ObjectSceneConfig, meta["config"])
    rgb = read_frames(folder / "rgb", meta["frames"])
    with np.load(folder / "ground_truth.npz") as gt:
        return ObjectSequence(
            rgb,
            gt["depth"],
            gt["instance_ids"],
            gt["poses"],
            gt["K"],
            read_png(folder / "background.png"),
            gt["lights"],
            list(meta["instances"].values()),
            config,
        )


def _camera_info_yaml(seq: StereoSequence, side: str) -> dict[str, Any]:
    """The camera_calibration / camera_info_manager YAML layout."""
    info = seq.camera_info(side)

    def matrix(rows: int, cols: int, data: list[float]) -> dict[str, Any]:
        return {"rows": rows, "cols": cols, "data": data}

    return {
        "image_width": info["width"],
        "image_height": info["height"],
        "camera_name": side,
        "camera_matrix": matrix(3, 3, info["k"]),
        "distortion_model": info["distortion_model"],
        "distortion_coefficients": matrix(1, 5, info["d"]),
        "rectification_matrix": matrix(3, 3, info["r"]),
        "projection_matrix": matrix(3, 4, info["p"]),
    }


def write_stereo_dataset(
    folder: str | Path, seed: int = 0, n_frames: int = 240, progress: bool = True, **options: Any
) -> StereoSequence:
    """Render a stereo sequence into ``folder`` and return it; a folder made with the same parameters is reused.

    Layout: left/NNNNNN.png, right/NNNNNN.png, ground_truth.npz (depth_left, depth_right, poses = T_world_left,
    timestamps, K, baseline), poses_tum.txt and poses_kitti.txt (relative to the first left camera), times.txt,
    calib.txt (KITTI P0/P1), left.yaml / right.yaml (ROS camera_info), meta.yaml.
    """
    folder = Path(folder)
    config = from_mapping(StereoSceneConfig, {**options, "seed": seed, "n_frames": n_frames})
    if _made_with(folder, STEREO_DATASET_FORMAT, config):
        return load_stereo_dataset(folder)
    seq = render_stereo_sequence(config, progress=progress)
    (folder / "meta.yaml").unlink(missing_ok=True)  # an interrupted write must not look complete
    write_frames(folder / "left", seq.left)
    write_frames(folder / "right", seq.right)
    # Uncompressed: dense depth of a room compresses only to ~50% and zlib would take longer than the rendering.
    np.savez(
        folder / "ground_truth.npz",
        depth_left=seq.depth_left,
        depth_right=seq.depth_right,
        poses=seq.poses,
        timestamps=seq.timestamps,
        K=seq.K,
        baseline=seq.baseline,
    )
    write_tum_trajectory(seq.trajectory(), folder / "poses_tum.txt")
    write_kitti_poses(seq.trajectory(), folder / "poses_kitti.txt")
    np.savetxt(folder / "times.txt", seq.timestamps, fmt="%.6e")
    calib = "".join(
        f"P{k}: " + " ".join(f"{v:.12e}" for v in seq.projection(side).ravel()) + "\n"
        for k, side in enumerate(("left", "right"))
    )
    (folder / "calib.txt").write_text(calib)
    for side in ("left", "right"):
        (folder / f"{side}.yaml").write_text(yaml.safe_dump(_camera_info_yaml(seq, side), sort_keys=False))
    meta = {
        "format": STEREO_DATASET_FORMAT,
        "config": to_mapping(config),
        "frames": len(seq),
        "width": seq.width,
        "height": seq.height,
        "baseline": seq.baseline,
        "K": seq.K.tolist(),
        "path_length_m": seq.path_length(),
        "pose_files": "left camera T_left0_left (first pose identity), optical axes x right, y down, z forward",
    }
    (folder / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return seq


def load_stereo_dataset(folder: str | Path) -> StereoSequence:
    """Load a folder written by write_stereo_dataset."""
    folder = Path(folder)
    meta = _existing_meta(folder, STEREO_DATASET_FORMAT, "stereo")
    config = from_mapping(StereoSceneConfig, meta["config"])
    left, right = (read_frames(folder / side, meta["frames"]) for side in ("left", "right"))
    with np.load(folder / "ground_truth.npz") as gt:
        return StereoSequence(
            left,
            right,
            gt["depth_left"],
            gt["depth_right"],
            gt["poses"],
            gt["timestamps"],
            gt["K"],
            float(gt["baseline"]),
            config,
        )
