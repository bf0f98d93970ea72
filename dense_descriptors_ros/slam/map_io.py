"""Map files: map save/load (npz + yaml), PLY point clouds, voxel filter.

A saved map is a folder with ``map.npz`` (every map array, see :meth:`SlamMap.to_arrays`) and ``map.yaml``
(format version, descriptor model id, feature type, descriptor size and dtype, intrinsics, counts). Loading refuses a
map whose descriptor model or feature type differs from the running SLAM's: descriptors from another model live in
another space, so matching against them would silently fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.io.atomic_files import atomic_path, atomic_write_bytes, atomic_write_text
from dense_descriptors_ros.slam.map import SlamMap

MAP_FORMAT_VERSION = 2  # 2: keyframe covariances


class MapMismatchError(ValueError):
    """A saved map was made with another descriptor model, feature type or descriptor size."""


def save_map(folder: str | Path, slam_map: SlamMap, model_id: str, feature_type: str, camera: StereoCamera) -> Path:
    """Write ``folder/map.npz`` and ``folder/map.yaml``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = slam_map.to_arrays()
    with atomic_path(folder / "map.npz") as tmp:  # the arrays first, their description last
        np.savez_compressed(tmp, **arrays)
    meta = {
        "format_version": MAP_FORMAT_VERSION,
        "model_id": model_id,
        "feature_type": feature_type,
        "descriptor_dim": int(slam_map.descriptor_dim),
        "descriptor_dtype": str(slam_map.descriptor_dtype),
        "camera": {k: float(getattr(camera, k)) for k in ("fx", "fy", "cx", "cy", "baseline")}
        | {"width": camera.width, "height": camera.height},
        "keyframes": len(arrays["kf_id"]),
        "points": int(arrays["alive"].sum()),
    }
    atomic_write_text(folder / "map.yaml", yaml.safe_dump(meta, sort_keys=False))
    return folder


def read_map_metadata(folder: str | Path) -> dict:
    path = Path(folder) / "map.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no saved map in {folder}: {path} is missing")
    meta = yaml.safe_load(path.read_text())
    if not isinstance(meta, dict) or meta.get("format_version") != MAP_FORMAT_VERSION:
        raise MapMismatchError(f"{path}: unsupported map format (expected format_version {MAP_FORMAT_VERSION})")
    return meta


def check_map(folder: str | Path, model_id: str, feature_type: str, descriptor_dim: int | None = None) -> dict:
    """The metadata of a saved map that this SLAM can use; :class:`MapMismatchError` if it was made with another
    model, feature type or descriptor size."""
    meta = read_map_metadata(folder)
    if meta["feature_type"] != feature_type:
        raise MapMismatchError(
            f"map in {folder} uses {meta['feature_type']!r} features, this SLAM uses {feature_type!r}"
        )
    if meta["model_id"] != model_id:
        raise MapMismatchError(
            f"map in {folder} was made with descriptor model {meta['model_id']!r}, this SLAM runs {model_id!r}; "
            "descriptors of different models cannot be matched"
        )
    if descriptor_dim is not None and meta["descriptor_dim"] != descriptor_dim:
        raise MapMismatchError(f"map in {folder} has D={meta['descriptor_dim']} descriptors, expected {descriptor_dim}")
    return meta


def load_map(folder: str | Path, model_id: str, feature_type: str, descriptor_dim: int | None = None) -> SlamMap:
    """Read a saved map; :class:`MapMismatchError` if it was made with another model or feature type."""
    check_map(folder, model_id, feature_type, descriptor_dim)
    with np.load(Path(folder) / "map.npz") as data:
        return SlamMap.from_arrays({k: data[k] for k in data.files})


def voxel_downsample(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """Mean of the points in each occupied voxel (numpy; the cloud published on the topic)."""
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be positive, got {voxel_size}")
    if len(points) == 0:
        return np.zeros((0, 3))
    keys = np.floor(points / voxel_size).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    sums = np.zeros((len(counts), 3))
    np.add.at(sums, inverse.ravel(), points)
    return sums / counts[:, None]


def write_ply(path: str | Path, points: np.ndarray) -> None:
    """Binary little-endian PLY with float32 x, y, z."""
    points = np.ascontiguousarray(points, dtype="<f4").reshape(-1, 3)
    header = (
        f"ply\nformat binary_little_endian 1.0\nelement vertex {len(points)}\n"
        "property float x\nproperty float y\nproperty float z\nend_header\n"
    )
    atomic_write_bytes(path, header.encode("ascii") + points.tobytes())


def read_ply(path: str | Path) -> np.ndarray:
    """Read a cloud written by :func:`write_ply`."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    return np.frombuffer(data[end:], dtype="<f4").reshape(-1, 3).astype(np.float64)
