"""A synthetic rectified stereo world for SLAM tests and benchmarks: a textured box room rendered by ray casting.

The camera moves inside an axis-aligned box, so every pixel sees exactly one wall and there is no occlusion to
resolve: a pixel's ray is intersected with the six planes (the nearest positive hit is the exit point), and the
wall's texture is read with one ``cv2.remap`` on a texture atlas. Textures are random rectangles and discs over
smooth noise, which gives corners for GFTT/FAST and ORB. A *descriptor oracle* renders a D-channel smooth random
field glued to the walls the same way: a dense descriptor image that is exactly view-invariant (what a perfect
learned model would output), so tracking and mapping logic can be tested without a network.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.se3 import se3_exp
from dense_descriptors_ros.synthetic.textures import grey_shapes_texture


@dataclass
class StereoFrame:
    stamp: float
    left: np.ndarray  # uint8 gray (H, W)
    right: np.ndarray
    left_desc: np.ndarray | None  # float32 (H, W, D) unit norm (descriptor oracle) or None
    right_desc: np.ndarray | None
    T_world_cam: np.ndarray  # ground truth, left camera


class BoxRoomScene:
    """A box room ``[-sx, sx] x [-sy, sy] x [-sz, sz]`` metres with textured walls and a descriptor oracle."""

    def __init__(
        self,
        half_size: tuple[float, float, float] = (5.0, 2.0, 5.0),
        texture_px: int = 1024,
        descriptor_dim: int = 16,
        seed: int = 0,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.half_size = np.asarray(half_size, np.float64)
        self.texture_px = texture_px
        self.atlas = np.concatenate([grey_shapes_texture(rng, texture_px, 500) for _ in range(6)], axis=0)
        self.descriptor_dim = descriptor_dim
        # The oracle field varies on the scale of the texture shapes; it is stored at 1/4 of the texture resolution.
        self.descriptor_scale = 4
        small = texture_px // 16
        fields = rng.normal(size=(6 * small, small, descriptor_dim)).astype(np.float32)
        fields = cv2.GaussianBlur(fields, (0, 0), 0.8)
        self.descriptor_atlas = cv2.resize(
            fields,
            (texture_px // self.descriptor_scale, 6 * texture_px // self.descriptor_scale),
            interpolation=cv2.INTER_CUBIC,
        )

    def _atlas_coordinates(self, camera: StereoCamera, T_world_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u, v = np.meshgrid(np.arange(camera.width, dtype=np.float32), np.arange(camera.height, dtype=np.float32))
        rays = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u)], axis=-1)
        d = rays @ T_world_cam[:3, :3].T.astype(np.float32)
        c = T_world_cam[:3, 3].astype(np.float32)
        half = self.half_size.astype(np.float32)
        if np.any(np.abs(c) >= half):
            raise ValueError(f"camera centre {c} is outside the room {self.half_size}")
        # Inside a box the ray leaves through, per axis, the wall its direction points to; the nearest one wins.
        positive = d >= 0
        with np.errstate(divide="ignore"):
            t_axes = (np.where(positive, half, -half) - c) / np.where(d == 0, 1e-12, d)
        axis = np.argmin(t_axes, axis=-1)
        t = np.min(t_axes, axis=-1)
        p = c + t[..., None] * d
        face = axis + 3 * (~np.take_along_axis(positive, axis[..., None], -1)[..., 0])
        # the two in-plane coordinates of each wall, scaled to texture pixels
        p1 = np.where(axis == 0, p[..., 1], p[..., 0])
        p2 = np.where(axis == 2, p[..., 1], p[..., 2])
        s1 = np.where(axis == 0, half[1], half[0])
        s2 = np.where(axis == 2, half[1], half[2])
        n = self.texture_px
        map_x = ((p1 + s1) / (2 * s1) * (n - 1)).astype(np.float32)
        map_y = ((p2 + s2) / (2 * s2) * (n - 1) + face * n).astype(np.float32)
        return map_x, map_y

    def render(
        self, camera: StereoCamera, T_world_cam: np.ndarray, with_descriptors: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Gray image (H, W) uint8 and, optionally, the oracle descriptor image (H, W, D) of one camera."""
        map_x, map_y = self._atlas_coordinates(camera, T_world_cam)
        image = cv2.remap(self.atlas, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if not with_descriptors:
            return image, None
        k = 1.0 / self.descriptor_scale
        desc = cv2.remap(self.descriptor_atlas, map_x * k, map_y * k, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        desc /= np.maximum(np.linalg.norm(desc, axis=-1, keepdims=True), 1e-12)
        return image, desc

    def render_stereo(
        self,
        camera: StereoCamera,
        T_world_cam: np.ndarray,
        stamp: float,
        with_descriptors: bool = True,
        noise_std: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> StereoFrame:
        T_world_right = T_world_cam @ se3_exp(np.array([camera.baseline, 0, 0, 0, 0, 0]))
        left, left_desc = self.render(camera, T_world_cam, with_descriptors)
        right, right_desc = self.render(camera, T_world_right, with_descriptors)
        if noise_std > 0:
            rng = rng or np.random.default_rng(0)
            left = np.clip(left + rng.normal(0, noise_std, left.shape), 0, 255).astype(np.uint8)
            right = np.clip(right + rng.normal(0, noise_std, right.shape), 0, 255).astype(np.uint8)
        return StereoFrame(stamp, left, right, left_desc, right_desc, T_world_cam.copy())


def circular_trajectory(
    num_frames: int, radius: float = 2.0, turns: float = 1.0, height_wave: float = 0.1, fps: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps and T_world_cam poses on a horizontal circle, the camera looking along the direction of travel
    tilted outwards, with a small vertical wave. Optical frame: x right, y down (world -y up), z forward."""
    stamps = np.arange(num_frames) / fps
    poses = np.zeros((num_frames, 4, 4))
    for i, s in enumerate(np.linspace(0, 2 * np.pi * turns, num_frames, endpoint=False)):
        centre = np.array([radius * np.cos(s), height_wave * np.sin(3 * s), radius * np.sin(s)])
        tangent = np.array([-np.sin(s), 0.0, np.cos(s)])
        outward = np.array([np.cos(s), 0.0, np.sin(s)])
        forward = tangent + 0.6 * outward
        forward /= np.linalg.norm(forward)
        down = np.array([0.0, 1.0, 0.0])
        right = np.cross(down, forward)
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        poses[i, :3, :3] = np.stack([right, down, forward], axis=1)
        poses[i, :3, 3] = centre
        poses[i, 3, 3] = 1.0
    return stamps, poses


def synthetic_stereo_sequence(
    camera: StereoCamera,
    num_frames: int,
    turns: float = 1.0,
    radius: float = 2.0,
    seed: int = 0,
    with_descriptors: bool = True,
    noise_std: float = 2.0,
    fps: float = 10.0,
    descriptor_dim: int = 16,
) -> list[StereoFrame]:
    """Render a stereo sequence along :func:`circular_trajectory` in a :class:`BoxRoomScene`."""
    scene = BoxRoomScene(descriptor_dim=descriptor_dim, seed=seed)
    stamps, poses = circular_trajectory(num_frames, radius=radius, turns=turns, fps=fps)
    rng = np.random.default_rng(seed + 1)
    return [
        scene.render_stereo(camera, T, float(t), with_descriptors, noise_std, rng)
        for t, T in zip(stamps, poses, strict=True)
    ]
