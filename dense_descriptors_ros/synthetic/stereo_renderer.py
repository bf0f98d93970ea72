"""Ground-truth rendered stereo sequences for SLAM: a textured room with blocks, a smooth camera loop, rectified pairs.

The world frame is the room's (z up, floor at z = 0). The left camera follows a closed loop (an ellipse around the
room centre, with a gentle bob in height and small head motion) looking along its direction of travel; with
``loops`` > 1 it passes its start again, so loop closure can fire. The right camera sits ``baseline`` metres along
the left camera's x axis with the same intrinsics (an ideally rectified pair): a left pixel (u, v) with depth Z is
seen in the right image at (u - fx * baseline / Z, v).

Usage::

    from dense_descriptors_ros.synthetic.stereo_renderer import render_stereo_sequence

    seq = render_stereo_sequence(seed=0, n_frames=240)  # or dataset_folders.write_stereo_dataset
    seq.left[i], seq.right[i], seq.depth_left[i]      # uint8 RGB pairs and metric depth of the left view
    seq.camera_info("right")                            # CameraInfo fields: width, height, k, d, r, p
    seq.poses[i]                                        # T_world_left; seq.relative_poses(): first pose = identity
    seq.trajectory()                                    # geometry.trajectory.Trajectory (relative poses)
    seq.loop_closures()                                 # (i, j) frame pairs seeing the same place from the same pose
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from dense_descriptors_ros.config import from_mapping, to_mapping
from dense_descriptors_ros.geometry.camera import intrinsics_from_fov
from dense_descriptors_ros.geometry.se3 import invert_pose, so3_log
from dense_descriptors_ros.geometry.trajectory import Trajectory
from dense_descriptors_ros.synthetic.gl_rasterizer import Lighting, MeshRasterizer
from dense_descriptors_ros.synthetic.render_assets import TILE_PX, ObjectModel, box_faces, pack_atlas, quad_mesh
from dense_descriptors_ros.synthetic.textures import (
    blocks_texture,
    noise_texture,
    room_surface_texture,
    stripes_texture,
)

__all__ = [
    "StereoSceneConfig",
    "StereoSequence",
    "camera_trajectory",
    "loop_closure_pairs",
    "render_stereo_sequence",
]

_LIGHT_TOWARDS_WORLD = np.array([0.3, -0.2, 1.0])  # mostly from above


@dataclass
class StereoSceneConfig:
    """The room, the camera loop and the stereo rig; everything is deterministic from ``seed``."""

    n_frames: int = field(default=240, metadata={"help": "number of stereo pairs", "range": (1, 100000)})
    seed: int = field(default=0, metadata={"help": "random seed (scene layout, textures)", "range": (0, 2**31)})
    width: int = field(default=320, metadata={"help": "image width (px)", "range": (16, 4096)})
    height: int = field(default=240, metadata={"help": "image height (px)", "range": (16, 4096)})
    fov_deg: float = field(default=70.0, metadata={"help": "horizontal field of view (deg)", "range": (20, 150)})
    baseline: float = field(default=0.12, metadata={"help": "stereo baseline (m)", "range": (0.01, 2.0)})
    fps: float = field(default=10.0, metadata={"help": "frame rate for the timestamps (Hz)", "range": (0.1, 1000)})
    loop_radius_x: float = field(
        default=3.0, metadata={"help": "loop ellipse semi-axis along x (m)", "range": (0.2, 50.0)}
    )
    loop_radius_y: float = field(
        default=2.0, metadata={"help": "loop ellipse semi-axis along y (m)", "range": (0.2, 50.0)}
    )
    loops: float = field(
        default=1.15, metadata={"help": "times around the loop (> 1 revisits the start)", "range": (0.01, 100.0)}
    )
    camera_height: float = field(default=1.3, metadata={"help": "mean camera height (m)", "range": (0.2, 10.0)})
    room_margin: float = field(
        default=3.0, metadata={"help": "distance from the loop to the walls (m)", "range": (1.0, 50.0)}
    )
    room_height: float = field(default=3.0, metadata={"help": "room height (m)", "range": (1.0, 20.0)})
    blocks: int = field(default=30, metadata={"help": "textured boxes standing in the room", "range": (0, 200)})
    texels_per_metre: int = field(
        default=160, metadata={"help": "texture resolution of walls, floor and ceiling", "range": (8, 1024)}
    )
    supersample: int = field(default=1, metadata={"help": "colour supersampling factor", "range": (1, 4)})


@dataclass
class StereoSequence:
    """Rectified stereo pairs with ground truth; ``poses`` are T_world_left (room frame, optical camera axes)."""

    left: np.ndarray  # (T, H, W, 3) uint8
    right: np.ndarray  # (T, H, W, 3) uint8
    depth_left: np.ndarray  # (T, H, W) float32 camera z (m)
    depth_right: np.ndarray  # (T, H, W) float32
    poses: np.ndarray  # (T, 4, 4) T_world_left
    timestamps: np.ndarray  # (T,) seconds
    K: np.ndarray  # (3, 3), both cameras
    baseline: float
    config: StereoSceneConfig

    def __len__(self) -> int:
        return len(self.left)

    @property
    def height(self) -> int:
        return self.left.shape[1]

    @property
    def width(self) -> int:
        return self.left.shape[2]

    def projection(self, side: str = "left") -> np.ndarray:
        """3x4 rectified projection matrix P (ROS CameraInfo / KITTI calib): P[0, 3] = -fx * baseline on the right."""
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', got {side!r}")
        P = np.hstack([self.K, np.zeros((3, 1))])
        if side == "right":
            P[0, 3] = -self.K[0, 0] * self.baseline
        return P

    def camera_info(self, side: str = "left") -> dict[str, Any]:
        """sensor_msgs/CameraInfo fields (no distortion, identity rectification): width, height, distortion_model,
        d, k (9), r (9), p (12), all plain Python numbers."""
        return {
            "width": self.width,
            "height": self.height,
            "distortion_model": "plumb_bob",
            "d": [0.0] * 5,
            "k": self.K.ravel().tolist(),
            "r": np.eye(3).ravel().tolist(),
            "p": self.projection(side).ravel().tolist(),
        }

    def relative_poses(self) -> np.ndarray:
        """(T, 4, 4) T_left0_left: the left camera's poses in the frame of the first one (first = identity)."""
        return invert_pose(self.poses[0]) @ self.poses

    def trajectory(self) -> Trajectory:
        """The ground truth as written to poses_tum.txt / poses_kitti.txt (relative poses, timestamps)."""
        return Trajectory(self.timestamps, self.relative_poses())

    def path_length(self) -> float:
        return self.trajectory().path_length()

    def loop_closures(
        self, max_distance: float = 0.3, max_angle_deg: float = 15.0, min_separation_s: float = 10.0
    ) -> list[tuple[int, int]]:
        """Frame pairs that revisit a place (see loop_closure_pairs)."""
        return loop_closure_pairs(self.poses, self.timestamps, max_distance, max_angle_deg, min_separation_s)


def loop_closure_pairs(
    poses: np.ndarray,
    timestamps: np.ndarray,
    max_distance: float = 0.3,
    max_angle_deg: float = 15.0,
    min_separation_s: float = 10.0,
) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, at least ``min_separation_s`` apart in time, whose camera poses (T, 4, 4) are within
    ``max_distance`` metres and ``max_angle_deg`` degrees: the places a loop closure should recognise."""
    positions = poses[:, :3, 3]
    pairs = []
    for j in range(len(poses)):
        earlier = np.flatnonzero(timestamps <= timestamps[j] - min_separation_s)
        near = earlier[np.linalg.norm(positions[earlier] - positions[j], axis=1) <= max_distance]
        for i in near:
            if np.degrees(np.linalg.norm(so3_log(poses[i, :3, :3].T @ poses[j, :3, :3]))) <= max_angle_deg:
                pairs.append((int(i), int(j)))
    return pairs


def _ellipse_path(config: StereoSceneConfig, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) positions at constant speed along the ellipse (``loops`` times around) and (n, 2) unit tangents."""
    a, b = config.loop_radius_x, config.loop_radius_y
    dense = np.linspace(0.0, 2 * math.pi, 4097)
    xy = np.column_stack([a * np.cos(dense), b * np.sin(dense)])
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
    s = np.linspace(0.0, config.loops * arc[-1], n, endpoint=False) if n > 1 else np.zeros(1)
    angle = np.interp(s % arc[-1], arc, dense)
    positions = np.column_stack([a * np.cos(angle), b * np.sin(angle)])
    tangents = np.column_stack([-a * np.sin(angle), b * np.cos(angle)])
    return positions, tangents / np.linalg.norm(tangents, axis=1, keepdims=True)


def camera_trajectory(config: StereoSceneConfig) -> np.ndarray:
    """(T, 4, 4) T_world_left along the loop: looking ahead, with a small height bob, yaw sway and pitch."""
    n = config.n_frames
    positions, tangents = _ellipse_path(config, n)
    phase = 2 * math.pi * config.loops * np.arange(n) / max(n, 1)
    height = config.camera_height + 0.08 * np.sin(3 * phase)
    yaw = 0.08 * np.sin(2 * phase + 0.5)  # rad, relative to the direction of travel
    pitch = -0.05 + 0.04 * np.sin(5 * phase)
    poses = np.tile(np.eye(4), (n, 1, 1))
    for t in range(n):
        c, s = math.cos(yaw[t]), math.sin(yaw[t])
        heading = np.array([c * tangents[t, 0] - s * tangents[t, 1], s * tangents[t, 0] + c * tangents[t, 1], 0.0])
        forward = heading * math.cos(pitch[t]) + np.array([0.0, 0.0, math.sin(pitch[t])])
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        poses[t, :3, :3] = np.column_stack([right, down, forward])
        poses[t, :3, 3] = [positions[t, 0], positions[t, 1], height[t]]
    return poses


def _room(config: StereoSceneConfig, rng: np.random.Generator) -> list[ObjectModel]:
    """Floor, ceiling and four walls (world coordinates, each with its own texture)."""
    hx, hy = config.loop_radius_x + config.room_margin, config.loop_radius_y + config.room_margin
    top = config.room_height
    surfaces = {
        "floor": ([-hx, -hy, 0.0], [2 * hx, 0, 0], [0, 2 * hy, 0]),
        "ceiling": ([-hx, -hy, top], [2 * hx, 0, 0], [0, 2 * hy, 0]),
        "wall_south": ([-hx, -hy, top], [2 * hx, 0, 0], [0, 0, -top]),
        "wall_north": ([hx, hy, top], [-2 * hx, 0, 0], [0, 0, -top]),
        "wall_west": ([-hx, hy, top], [0, -2 * hy, 0], [0, 0, -top]),
        "wall_east": ([hx, -hy, top], [0, 2 * hy, 0], [0, 0, -top]),
    }
    models = []
    for name, (corner, edge_u, edge_v) in surfaces.items():
        mesh = quad_mesh(corner, edge_u, edge_v)
        posters = 1 if name.startswith("wall") else 0  # one photo only: more copies would look alike
        size = float(np.linalg.norm(edge_u)), float(np.linalg.norm(edge_v))
        texture = room_surface_texture(*size, config.texels_per_metre, rng, posters)
        models.append(ObjectModel(name, mesh, texture, "strong", specular=0.05))
    return models


def _blocks(config: StereoSceneConfig, rng: np.random.Generator, path: np.ndarray) -> list[ObjectModel]:
    """Boxes standing on the floor, kept at least 0.8 m (plus their half diagonal) away from the camera path."""
    hx, hy = config.loop_radius_x + config.room_margin - 0.3, config.loop_radius_y + config.room_margin - 0.3
    makers = (blocks_texture, noise_texture, stripes_texture)
    models: list[ObjectModel] = []
    for _ in range(50 * config.blocks):
        if len(models) == config.blocks:
            break
        size = np.array([rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0), rng.uniform(0.3, 2.2)])
        centre = np.array([rng.uniform(-hx, hx), rng.uniform(-hy, hy)])
        if np.linalg.norm(path[:, :2] - centre, axis=1).min() < 0.8 + 0.5 * np.linalg.norm(size[:2]):
            continue
        yaw = rng.uniform(0, math.pi)
        c, s = math.cos(yaw), math.sin(yaw)
        T = np.eye(4)
        T[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
        T[:3, 3] = [centre[0], centre[1], size[2] / 2]
        faces = [face.transformed(T) for face in box_faces(tuple(size))]
        tiles = [makers[int(rng.integers(len(makers)))](TILE_PX, TILE_PX, rng) for _ in faces]
        mesh, atlas = pack_atlas(list(zip(faces, tiles, strict=True)))
        models.append(ObjectModel(f"block_{len(models)}", mesh, atlas, "strong", specular=0.1))
    return models


def render_stereo_sequence(
    config: StereoSceneConfig | None = None, progress: bool = True, **overrides: Any
) -> StereoSequence:
    """Render a stereo sequence in memory. ``overrides`` are StereoSceneConfig fields."""
    config = from_mapping(StereoSceneConfig, {**to_mapping(config or StereoSceneConfig()), **overrides})
    rng = np.random.default_rng(config.seed)
    W, H, n = config.width, config.height, config.n_frames
    K = intrinsics_from_fov(W, H, config.fov_deg)
    poses = camera_trajectory(config)
    dense_path = camera_trajectory(from_mapping(StereoSceneConfig, {**to_mapping(config), "n_frames": 720}))
    scene = _room(config, rng) + _blocks(config, rng, dense_path[:, :3, 3])
    left_right = np.eye(4)
    left_right[0, 3] = config.baseline  # T_left_right
    images = {side: np.zeros((n, H, W, 3), np.uint8) for side in ("left", "right")}
    depths = {side: np.zeros((n, H, W), np.float32) for side in ("left", "right")}
    light_world = _LIGHT_TOWARDS_WORLD / np.linalg.norm(_LIGHT_TOWARDS_WORLD)
    with MeshRasterizer(W, H, supersample=config.supersample, near=0.05, far=200.0) as raster:
        handles = [raster.add_model(model) for model in scene]
        for t in tqdm(range(n), desc="render stereo", unit="pair", disable=not progress, leave=False):
            for side, T_world_cam in (("left", poses[t]), ("right", poses[t] @ left_right)):
                T_cam_world = invert_pose(T_world_cam)
                lighting = Lighting(tuple(T_cam_world[:3, :3] @ light_world), ambient=0.55)
                view = raster.render(K, [(h, T_cam_world) for h in handles], lighting)
                images[side][t], depths[side][t] = view.rgb, view.depth
    timestamps = np.arange(n) / config.fps
    return StereoSequence(
        images["left"], images["right"], depths["left"], depths["right"], poses, timestamps, K, config.baseline, config
    )
