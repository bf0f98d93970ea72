"""Training labels from depth and camera poses instead of optical flow (``labels: geometry``).

papers/000 trains on correspondences from RGB-D reconstructions: exact over wide baselines, where flow chained over
many frames is not (the README's "Is it the labels?"). A frame folder can carry its geometry in a ``geometry.npz``
beside or inside it:

- ``depth`` (N, H, W) metres along the optical axis, 0 or NaN where unknown;
- ``K`` (3, 3) pinhole intrinsics of those depth images (pixel centres at integers);
- ``T_cam_ref`` (N, 4, 4) each frame's camera-from-reference pose: the world for a static scene, the object for an
  object-centric capture (where the object turns, not the camera);
- ``usable`` (N, H, W) bool, optional: the pixels that move with the reference (e.g. the object's mask; default: all).

The N entries follow the folder's frames in order (like ``--masks``), before ``frame_stride``. The renderer's object
folders (``dense-descriptors render object``: ``ground_truth.npz`` with ``depth``, ``instance_ids``, ``poses``,
``K``) are read as they are, the target object's pose being the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dense_descriptors_ros.geometry.reprojection import reproject_pixels
from dense_descriptors_ros.geometry.se3 import invert_pose
from dense_descriptors_ros.learning.flow import FlowLabel

GEOMETRY_FILE = "geometry.npz"
RENDERED_OBJECT_FILE = "ground_truth.npz"
LABEL_SOURCES = ("flow", "geometry")


@dataclass
class FrameGeometry:
    """Depth, intrinsics and poses of a clip's frames (see the module docstring for the fields)."""

    depth: np.ndarray
    K: np.ndarray
    T_cam_ref: np.ndarray
    usable: np.ndarray | None
    source: str
    depth_tolerance: float = 0.02  # relative depth disagreement beyond which a point counts as hidden

    def __post_init__(self) -> None:
        n = len(self.depth)
        if self.depth.ndim != 3 or self.K.shape != (3, 3) or self.T_cam_ref.shape != (n, 4, 4):
            raise ValueError(
                f"{self.source}: expected depth (N, H, W), K (3, 3), T_cam_ref (N, 4, 4); got {self.depth.shape}, "
                f"{self.K.shape}, {self.T_cam_ref.shape}"
            )
        if self.usable is not None and self.usable.shape != self.depth.shape:
            raise ValueError(f"{self.source}: usable {self.usable.shape} does not match depth {self.depth.shape}")
        if not np.isfinite(self.K).all() or not np.isfinite(self.T_cam_ref).all():
            raise ValueError(f"{self.source}: K and T_cam_ref must be finite")

    def __len__(self) -> int:
        return len(self.depth)

    def select(self, indices: Sequence[int]) -> FrameGeometry:
        """The geometry of frames ``indices`` (the frames a clip kept), or a clear error when it has too few."""
        indices = list(indices)
        if indices and max(indices) >= len(self):
            raise ValueError(f"{self.source}: geometry of {len(self)} frames, but frame {max(indices)} is used")
        usable = self.usable[indices] if self.usable is not None else None
        return FrameGeometry(
            self.depth[indices], self.K, self.T_cam_ref[indices], usable, self.source, self.depth_tolerance
        )

    def label(self, i: int, j: int, image_size: tuple[int, int]) -> FlowLabel:
        """Frame i -> frame j correspondences of every pixel of an ``image_size`` (height, width) training image."""
        height, width = image_size
        depth_h, depth_w = self.depth.shape[1:]
        sx, sy = depth_w / width, depth_h / height
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
        grid = np.column_stack([xs.ravel(), ys.ravel()])
        scale = np.array([sx, sy])
        points_b, seen = reproject_pixels(
            (grid + 0.5) * scale - 0.5,  # training pixel centres in depth pixels
            self.depth[i],
            self.depth[j],
            self.K,
            self.T_cam_ref[j] @ invert_pose(self.T_cam_ref[i]),
            self.usable[i] if self.usable is not None else None,
            self.usable[j] if self.usable is not None else None,
            self.depth_tolerance,
        )
        flow = np.where(seen[:, None], (points_b + 0.5) / scale - 0.5 - grid, 0.0)
        return FlowLabel(flow.reshape(height, width, 2).astype(np.float32), seen.reshape(height, width))


def save_frame_geometry(
    folder: str | Path,
    depth: np.ndarray,
    K: np.ndarray,
    T_cam_ref: np.ndarray,
    usable: np.ndarray | None = None,
) -> Path:
    """Write ``folder/geometry.npz`` for ``labels: geometry`` (fields as in the module docstring), checked first, so a
    wrong shape fails here and not in the middle of a training run. Returns the file."""
    geometry = FrameGeometry(
        np.asarray(depth, np.float32),
        np.asarray(K, np.float64),
        np.asarray(T_cam_ref, np.float64),
        None if usable is None else np.asarray(usable, bool),
        str(folder),
    )
    path = Path(folder) / GEOMETRY_FILE
    arrays = {"depth": geometry.depth, "K": geometry.K, "T_cam_ref": geometry.T_cam_ref}
    if geometry.usable is not None:
        arrays["usable"] = geometry.usable
    np.savez_compressed(path, **arrays)
    return path


def _candidates(path: Path) -> list[Path]:
    folders = [path, path.parent] if path.is_dir() else [path.parent]
    return [folder / name for folder in folders for name in (GEOMETRY_FILE, RENDERED_OBJECT_FILE)]


def load_frame_geometry(path: str | Path) -> FrameGeometry:
    """The geometry of a frame folder: its ``geometry.npz`` (inside or beside it) or a rendered object folder's
    ``ground_truth.npz``; a clear error naming what was looked for otherwise."""
    path = Path(path)
    for candidate in _candidates(path):
        if not candidate.is_file():
            continue
        try:
            with np.load(candidate) as data:
                fields = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"{candidate}: unreadable ({exc})") from None
        if candidate.name == GEOMETRY_FILE:
            missing = {"depth", "K", "T_cam_ref"} - set(fields)
            if missing:
                raise ValueError(f"{candidate}: missing {sorted(missing)}")
            usable = fields["usable"].astype(bool) if "usable" in fields else None
            return FrameGeometry(
                fields["depth"].astype(np.float32), fields["K"], fields["T_cam_ref"], usable, str(candidate)
            )
        if {"depth", "instance_ids", "poses", "K"} <= set(fields):  # the renderer's object sequence
            return FrameGeometry(
                fields["depth"], fields["K"], fields["poses"][:, 0], fields["instance_ids"] == 1, str(candidate)
            )
    looked = ", ".join(str(c) for c in _candidates(path))
    raise ValueError(f"{path}: labels: geometry needs depth and poses; none found (looked for {looked})")
