"""Ground-truth rendered object sequences: textured objects moving in 6-DoF over image backgrounds.

Each frame has RGB (uint8), metric depth (float32 camera z, 0 on the background), instance ids (0 background,
1 the target object, 2 the occluder board), the pose ``T_cam_obj`` of every instance and the intrinsics K. Exact
pixel correspondences between any two frames, with visibility (occluded, out of view), come from back-projecting
with depth and pose (``correspondences``, ``dense_correspondences``, ``point_tracks``). Pixel coordinates are
(x=column, y=row) with pixel centres at integer coordinates. The background image is fixed to the camera, so
background pixels correspond to themselves.

Usage::

    from dense_descriptors_ros.synthetic.object_renderer import (
        ObjectSceneConfig, render_object_sequence, correspondences, dense_correspondences, point_tracks)

    seq = render_object_sequence(seed=0, n_frames=200, object="drill")  # or dataset_folders.write_object_dataset
    pts_j, visible = correspondences(seq, 0, 10, np.array([[160.0, 120.0]]))
    flow, valid = dense_correspondences(seq, 0, 10)        # (H, W, 2) flow 0 -> 10 and its validity
    tracks, vis = point_tracks(seq, query_points, ref=0)    # (T, N, 2), (T, N) for TAP-Vid style metrics
    seq.rgb[i], seq.depth[i], seq.masks[i], seq.object_poses[i], seq.K

    # Your own poses (T, M, 4, 4) for M models, e.g. an object leaving the view:
    seq = render_poses([make_object("hulk")], poses, K, width, height, background)

Objects and backgrounds: ``render_assets.OBJECT_NAMES`` (``drill`` weakly textured, ``hulk`` strongly) and
``textures.BACKGROUND_NAMES``. Rendering needs a headless OpenGL context (moderngl + EGL, Mesa llvmpipe on a
CPU); without one the functions raise ``RendererUnavailable`` (tests skip on it). Stereo sequences for SLAM live in
``stereo_renderer``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from dense_descriptors_ros.config import from_mapping, to_mapping
from dense_descriptors_ros.geometry.camera import intrinsics_from_fov
from dense_descriptors_ros.geometry.se3 import invert_pose, so3_exp
from dense_descriptors_ros.synthetic.gl_rasterizer import Lighting, MeshRasterizer, RendererUnavailable
from dense_descriptors_ros.synthetic.render_assets import OBJECT_NAMES, ObjectModel, make_object
from dense_descriptors_ros.synthetic.textures import BACKGROUND_NAMES, make_background

__all__ = [
    "ObjectSceneConfig",
    "ObjectSequence",
    "RendererUnavailable",
    "correspondences",
    "dense_correspondences",
    "point_tracks",
    "render_object_sequence",
    "render_poses",
]

TARGET_NAMES = tuple(n for n in OBJECT_NAMES if n != "occluder")
TARGET_ID, OCCLUDER_ID = 1, 2
_PARKED = np.array([0.0, 0.0, -10.0])  # occluder position (behind the camera, clipped) between its passes


@dataclass
class ObjectSceneConfig:
    """How a rendered object sequence looks and moves; everything is deterministic from ``seed``."""

    object: str = field(default="drill", metadata={"help": "target object", "choices": TARGET_NAMES})
    background: str = field(default="photo", metadata={"help": "background image", "choices": BACKGROUND_NAMES})
    n_frames: int = field(default=200, metadata={"help": "number of frames", "range": (1, 100000)})
    seed: int = field(default=0, metadata={"help": "random seed (motion, textures, lighting)", "range": (0, 2**31)})
    width: int = field(default=320, metadata={"help": "image width (px)", "range": (16, 4096)})
    height: int = field(default=240, metadata={"help": "image height (px)", "range": (16, 4096)})
    fov_deg: float = field(default=60.0, metadata={"help": "horizontal field of view (deg)", "range": (10, 150)})
    image_fraction: float = field(
        default=0.55,
        metadata={
            "help": "mean object size: its bounding sphere spans this fraction of the image "
            "width (sets the mean distance)",
            "range": (0.05, 2.0),
        },
    )
    distance_variation: float = field(
        default=0.2, metadata={"help": "amplitude of the distance change, relative to the mean", "range": (0.0, 0.8)}
    )
    rotation_deg_per_frame: float = field(
        default=3.0, metadata={"help": "mean rotation speed of the object (deg/frame)", "range": (0.0, 45.0)}
    )
    translation_fraction: float = field(
        default=0.35,
        metadata={
            "help": "how far the object centre wanders from the image centre, as a fraction of the half image size",
            "range": (0.0, 2.0),
        },
    )
    occlusion_passes: int = field(
        default=2, metadata={"help": "times the occluder board passes in front of the object", "range": (0, 100)}
    )
    occlusion_frames: int = field(
        default=40,
        metadata={"help": "frames one occluder pass takes (at most the spacing between passes)", "range": (2, 10000)},
    )
    lighting_change: float = field(
        default=0.5, metadata={"help": "strength of the light changes (0: constant light)", "range": (0.0, 1.0)}
    )
    supersample: int = field(default=2, metadata={"help": "colour supersampling factor", "range": (1, 4)})


@dataclass
class ObjectSequence:
    """A rendered object sequence (T frames of H x W). Instance k has id k + 1; in generated sequences instance 0
    is the target object and instance 1 the occluder board."""

    rgb: np.ndarray  # (T, H, W, 3) uint8
    depth: np.ndarray  # (T, H, W) float32 camera z (m), 0 where there is no object
    instance_ids: np.ndarray  # (T, H, W) uint8: 0 background, k + 1 where instance k is visible
    poses: np.ndarray  # (T, M, 4, 4) float64 T_cam_obj of each instance
    K: np.ndarray  # (3, 3)
    background: np.ndarray  # (H, W, 3) uint8, the clean background image (before the light gain)
    lights: np.ndarray  # (T, 7): light direction (3, camera frame), colour gain (3), ambient share
    instance_names: list[str]  # object name of each instance
    config: ObjectSceneConfig | None = None  # None for sequences made by render_poses

    def __len__(self) -> int:
        return len(self.rgb)

    @property
    def height(self) -> int:
        return self.rgb.shape[1]

    @property
    def width(self) -> int:
        return self.rgb.shape[2]

    @property
    def masks(self) -> np.ndarray:
        """(T, H, W) bool: where the target object (instance 0) is visible."""
        return self.instance_ids == TARGET_ID

    @property
    def object_poses(self) -> np.ndarray:
        """(T, 4, 4) T_cam_obj of the target object."""
        return self.poses[:, 0]


def _smooth_signal(
    rng: np.random.Generator, n: int, periods: tuple[float, float] = (40.0, 160.0), terms: int = 3
) -> np.ndarray:
    """(n,) smooth random signal in [-1, 1]: a normalised sum of sinusoids with random periods (frames) and phases."""
    t = np.arange(n, dtype=np.float64)
    period = rng.uniform(*periods, terms)
    phase = rng.uniform(0, 2 * math.pi, terms)
    amplitude = rng.uniform(0.5, 1.0, terms)
    waves = np.sin(2 * math.pi * t[None] / period[:, None] + phase[:, None])
    return (amplitude[:, None] * waves).sum(0) / amplitude.sum()


def _target_poses(config: ObjectSceneConfig, K: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    """(T, 4, 4) T_cam_obj: tumbling about a slowly turning axis while wandering over the image and in depth."""
    n = config.n_frames
    distance = max(2 * radius * K[0, 0] / (config.image_fraction * config.width), 1.5 * radius)
    rotation = so3_exp(rng.normal(size=3) * 2.0)
    axis_base = rng.normal(size=(3, 3))
    axis_signals = np.stack([_smooth_signal(rng, n) for _ in range(2)])
    speed = math.radians(config.rotation_deg_per_frame) * (1.0 + 0.4 * _smooth_signal(rng, n))
    u = K[0, 2] + config.translation_fraction * 0.5 * config.width * _smooth_signal(rng, n)
    v = K[1, 2] + config.translation_fraction * 0.5 * config.height * _smooth_signal(rng, n)
    z = distance * (1.0 + config.distance_variation * _smooth_signal(rng, n))
    poses = np.tile(np.eye(4), (n, 1, 1))
    for t in range(n):
        poses[t, :3, :3] = rotation
        poses[t, :3, 3] = [(u[t] - K[0, 2]) * z[t] / K[0, 0], (v[t] - K[1, 2]) * z[t] / K[1, 1], z[t]]
        axis = axis_base[0] + axis_signals[0, t] * axis_base[1] + axis_signals[1, t] * axis_base[2]
        rotation = so3_exp(axis / np.linalg.norm(axis) * speed[t]) @ rotation
    return poses


def _occluder_poses(
    config: ObjectSceneConfig,
    K: np.ndarray,
    target: np.ndarray,
    target_points: np.ndarray,
    occluder_width: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """(T, 4, 4): the board sweeps across the target once per pass, between it and the camera, from touching one
    side of the target's silhouette to touching the other; it is 1.3 times as wide as the silhouette on screen, so
    it hides the target completely around the middle of a pass. Between passes it is parked behind the camera."""
    n = config.n_frames
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, :3, 3] = _PARKED
    radius = float(np.linalg.norm(target_points, axis=1).max())
    spacing = n / (config.occlusion_passes + 1)
    duration = min(config.occlusion_frames, spacing)  # passes never overlap
    for k in range(config.occlusion_passes):
        centre = (k + 1) * spacing
        direction = rng.choice([-1.0, 1.0])
        tilt = so3_exp(np.array([0.0, rng.uniform(-0.3, 0.3), rng.uniform(-0.15, 0.15)]))
        for t in range(max(0, math.ceil(centre - duration / 2)), min(n, math.floor(centre + duration / 2) + 1)):
            cam = target_points @ target[t, :3, :3].T + target[t, :3, 3]
            u_points = K[0, 0] * cam[:, 0] / cam[:, 2] + K[0, 2]
            silhouette_px = float(np.ptp(u_points))
            z_target = target[t, 2, 3]
            board_px = 1.3 * silhouette_px + 10
            z = max(min(K[0, 0] * occluder_width / board_px, z_target - radius - 0.03), 0.1)
            board_px = K[0, 0] * occluder_width / z
            u_centre = 0.5 * (u_points.min() + u_points.max())
            v_target = K[1, 1] * target[t, 1, 3] / z_target + K[1, 2]
            progress = (t - centre) / (duration / 2)  # -1 .. 1
            u = u_centre + direction * progress * (0.5 * (board_px + silhouette_px) + 4)
            poses[t, :3, :3] = tilt
            poses[t, :3, 3] = [(u - K[0, 2]) * z / K[0, 0], (v_target - K[1, 2]) * z / K[1, 1], z]
    return poses


def _lights(config: ObjectSceneConfig, rng: np.random.Generator) -> np.ndarray:
    """(T, 7): direction towards the light (camera frame), colour gain, ambient share; smooth in time."""
    n, strength = config.n_frames, config.lighting_change
    azimuth = rng.uniform(-0.6, 0.6) + 1.2 * strength * _smooth_signal(rng, n)
    elevation = 0.6 + 0.35 * strength * _smooth_signal(rng, n)
    direction = np.stack(
        [np.sin(azimuth) * np.cos(elevation), -np.sin(elevation), -np.cos(azimuth) * np.cos(elevation)], 1
    )
    gain = 1.0 + 0.3 * strength * _smooth_signal(rng, n)
    tint = 1.0 + 0.08 * strength * np.stack([_smooth_signal(rng, n) for _ in range(3)], 1)
    ambient = 0.4 + 0.1 * strength * _smooth_signal(rng, n)
    return np.column_stack([direction, gain[:, None] * tint, ambient])


def constant_lights(n_frames: int, lighting: Lighting | None = None) -> np.ndarray:
    """(T, 7) light rows for render_poses with the same light in every frame."""
    light = lighting or Lighting()
    return np.tile(np.array([*light.direction, *light.colour, light.ambient], np.float64), (n_frames, 1))


def render_poses(
    models: list[ObjectModel],
    poses: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    background: np.ndarray | None = None,
    lights: np.ndarray | None = None,
    supersample: int = 2,
    progress: bool = False,
) -> ObjectSequence:
    """Render given poses (T, M, 4, 4) T_cam_obj of M models over a camera-fixed background (black if None).

    ``lights`` (T, 7) rows as in ObjectSequence.lights (default: constant Lighting()); the background is scaled by
    each frame's light colour gain. Instance k gets id k + 1.
    """
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 4 or poses.shape[1:] != (len(models), 4, 4):
        raise ValueError(f"poses must be (T, {len(models)}, 4, 4) for {len(models)} models, got {poses.shape}")
    n = len(poses)
    lights = constant_lights(n) if lights is None else np.asarray(lights, np.float64)
    if lights.shape != (n, 7):
        raise ValueError(f"lights must be ({n}, 7), got {lights.shape}")
    background = np.zeros((height, width, 3), np.uint8) if background is None else background
    if background.shape != (height, width, 3) or background.dtype != np.uint8:
        raise ValueError(f"background must be ({height}, {width}, 3) uint8, got {background.shape} {background.dtype}")
    rgb = np.zeros((n, height, width, 3), np.uint8)
    depth = np.zeros((n, height, width), np.float32)
    ids = np.zeros((n, height, width), np.uint8)
    with MeshRasterizer(width, height, supersample=supersample) as raster:
        handles = [raster.add_model(model) for model in models]
        for t in tqdm(range(n), desc="render", unit="frame", disable=not progress, leave=False):
            light = Lighting(tuple(lights[t, :3]), tuple(lights[t, 3:6]), float(lights[t, 6]))
            # The background is a picture far behind: no shading, only the light's gain.
            lit_background = np.clip(background * lights[t, 3:6].astype(np.float32), 0, 255).astype(np.uint8)
            view = raster.render(K, list(zip(handles, poses[t], strict=True)), light, lit_background)
            rgb[t], depth[t], ids[t] = view.rgb, view.depth, view.instance_ids
    return ObjectSequence(
        rgb, depth, ids, poses, np.asarray(K, np.float64), background, lights, [model.name for model in models]
    )


def render_object_sequence(
    config: ObjectSceneConfig | None = None, progress: bool = True, **overrides: Any
) -> ObjectSequence:
    """Render a sequence in memory. ``overrides`` are ObjectSceneConfig fields (checked like a config file)."""
    config = from_mapping(ObjectSceneConfig, {**to_mapping(config or ObjectSceneConfig()), **overrides})
    rng = np.random.default_rng(config.seed)
    K = intrinsics_from_fov(config.width, config.height, config.fov_deg)
    target_model = make_object(config.object, config.seed)
    occluder_model = make_object("occluder", config.seed)
    background = make_background(config.background, config.height, config.width, config.seed)
    target = _target_poses(config, K, target_model.mesh.radius, rng)
    occluder_width = float(np.ptp(occluder_model.mesh.positions[:, 0]))
    occluder = _occluder_poses(config, K, target, target_model.mesh.positions[::3], occluder_width, rng)
    seq = render_poses(
        [target_model, occluder_model],
        np.stack([target, occluder], axis=1),
        K,
        config.width,
        config.height,
        background,
        _lights(config, rng),
        config.supersample,
        progress,
    )
    seq.config = config
    return seq


# ---------------------------------------------------------------------------------------------------------------
# Ground-truth correspondences


def _check_points(pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must be an (N, 2) array of (x, y) pixel coordinates, got shape {pts.shape}")
    return pts


def _check_frame(seq: ObjectSequence, index: int, name: str) -> int:
    if not -len(seq) <= index < len(seq):
        raise ValueError(f"frame {name}={index} is outside the sequence of {len(seq)} frames")
    return index % len(seq)


def _inside(pts: np.ndarray, width: int, height: int) -> np.ndarray:
    """Points whose nearest pixel is in the image."""
    x, y = pts[:, 0], pts[:, 1]
    return (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)


def depth_at(depth: np.ndarray, ids: np.ndarray, pts: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """Depth at sub-pixel points from the pixels of the same instance around them (nan where none).

    Inverse depth is interpolated bilinearly: it is affine in the image over a plane, so the result is exact on
    planar faces (and at pixel centres it is the pixel's own depth).
    """
    h, w = depth.shape
    x0 = np.floor(pts[:, 0]).astype(np.int64)
    y0 = np.floor(pts[:, 1]).astype(np.int64)
    fx, fy = pts[:, 0] - x0, pts[:, 1] - y0
    inv_sum = np.zeros(len(pts))
    weight_sum = np.zeros(len(pts))
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xs, ys = np.clip(x0 + dx, 0, w - 1), np.clip(y0 + dy, 0, h - 1)
        d = depth[ys, xs]
        use = (ids[ys, xs] == instance) & (d > 0) & (weight > 0)
        inv_sum += np.where(use, weight / np.where(d > 0, d, 1.0), 0.0)
        weight_sum += np.where(use, weight, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight_sum > 0, weight_sum / inv_sum, np.nan)


def correspondences(
    seq: ObjectSequence, i: int, j: int, pts_i: np.ndarray, depth_tolerance: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """Where points of frame i are in frame j, and whether they are visible there.

    pts_i: (N, 2) (x, y) pixels of frame i. Returns ``pts_j`` (N, 2) float64 (nan for points outside frame i) and
    ``visible`` (N,) bool: False when the point leaves the image, turns away or is hidden (its depth in frame j
    does not match the rendered depth within ``depth_tolerance`` relative, or another instance covers it).
    Object points move with their instance's pose; background points stay at the same pixel.
    """
    i, j = _check_frame(seq, i, "i"), _check_frame(seq, j, "j")
    pts = _check_points(pts_i)
    h, w = seq.height, seq.width
    pts_j = np.full_like(pts, np.nan)
    visible = np.zeros(len(pts), bool)
    inside_i = _inside(pts, w, h)
    cols = np.clip(np.rint(pts[:, 0]).astype(np.int64), 0, w - 1)
    rows = np.clip(np.rint(pts[:, 1]).astype(np.int64), 0, h - 1)
    instance = np.where(inside_i, seq.instance_ids[i][rows, cols], 0)
    # Background: fixed to the camera.
    on_background = inside_i & (instance == 0)
    pts_j[on_background] = pts[on_background]
    # Objects: back-project with the depth of frame i, move with the instance's relative pose, project.
    on_object = inside_i & (instance > 0)
    if on_object.any():
        sel = np.flatnonzero(on_object)
        z = depth_at(seq.depth[i], seq.instance_ids[i], pts[sel], instance[sel])
        rays = np.column_stack([pts[sel], np.ones(len(sel))]) @ np.linalg.inv(seq.K).T
        cam_i = rays * z[:, None]
        motion = seq.poses[j, instance[sel] - 1] @ invert_pose(seq.poses[i, instance[sel] - 1])
        cam_j = np.einsum("nab,nb->na", motion[:, :3, :3], cam_i) + motion[:, :3, 3]
        in_front = cam_j[:, 2] > 1e-6
        proj = cam_j @ seq.K.T
        pts_j[sel] = np.where(in_front[:, None], proj[:, :2] / np.where(in_front, proj[:, 2], 1.0)[:, None], np.nan)
    inside_j = np.isfinite(pts_j).all(1) & _inside(np.nan_to_num(pts_j, nan=-1e9), w, h)
    cols_j = np.clip(np.rint(np.nan_to_num(pts_j[:, 0])).astype(np.int64), 0, w - 1)
    rows_j = np.clip(np.rint(np.nan_to_num(pts_j[:, 1])).astype(np.int64), 0, h - 1)
    visible = inside_j & (seq.instance_ids[j][rows_j, cols_j] == instance)
    if on_object.any():
        check = np.flatnonzero(visible & on_object)
        pos = np.searchsorted(sel, check)
        rendered = depth_at(seq.depth[j], seq.instance_ids[j], pts_j[check], instance[check])
        predicted = cam_j[pos, 2]
        visible[check] = np.abs(rendered - predicted) <= depth_tolerance * predicted  # nan compares False
    return pts_j, visible


def dense_correspondences(
    seq: ObjectSequence, i: int, j: int, depth_tolerance: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """Flow from frame i to frame j for every pixel: ``flow`` (H, W, 2) float32 (x, y) and ``valid`` (H, W) bool
    (the pixel is visible in frame j; restrict to ``seq.masks[i]`` for object pixels only)."""
    h, w = seq.height, seq.width
    ys, xs = np.mgrid[0:h, 0:w]
    grid = np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)
    pts_j, visible = correspondences(seq, i, j, grid, depth_tolerance)
    flow = np.nan_to_num(pts_j - grid).astype(np.float32).reshape(h, w, 2)
    return flow, visible.reshape(h, w)


def point_tracks(
    seq: ObjectSequence, pts: np.ndarray, ref: int = 0, depth_tolerance: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth tracks of points chosen in frame ``ref``: positions (T, N, 2) and visibility (T, N)."""
    pts = _check_points(pts)
    tracks = np.empty((len(seq), len(pts), 2))
    visible = np.empty((len(seq), len(pts)), bool)
    for t in range(len(seq)):
        tracks[t], visible[t] = correspondences(seq, ref, t, pts, depth_tolerance)
    return tracks, visible
