"""A generated video with known motion: a textured object moving (rotation + translation) over a textured background.

Used by the tests, the training benchmark and quick demos: it has exact ground-truth object masks and
correspondences (``SyntheticVideo.correspondences``), like the rendered drill videos of papers/000 section 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dense_descriptors_ros.synthetic.textures import smooth_texture


def _homogeneous(affine: np.ndarray) -> np.ndarray:
    return np.vstack([affine, [0.0, 0.0, 1.0]])


@dataclass
class SyntheticVideo:
    """Frames (uint8 RGB), object masks (bool) and the object pose per frame (2x3 affine: object texture -> frame)."""

    frames: list[np.ndarray]
    masks: list[np.ndarray]
    poses: list[np.ndarray]

    def correspondences(self, i: int, j: int, points: np.ndarray) -> np.ndarray:
        """Where object points (N, 2) (x, y) of frame i are in frame j."""
        transform = _homogeneous(self.poses[j]) @ np.linalg.inv(_homogeneous(self.poses[i]))
        return points @ transform[:2, :2].T + transform[:2, 2]


def textured_object_video(
    num_frames: int = 24,
    height: int = 96,
    width: int = 128,
    seed: int = 0,
    max_step_px: float = 2.5,
    max_step_deg: float = 3.0,
) -> SyntheticVideo:
    """A textured ellipse that drifts and turns smoothly over a static textured background."""
    rng = np.random.default_rng(seed)
    background = smooth_texture(height, width, rng)
    size = int(0.6 * min(height, width))
    obj_texture = smooth_texture(size, size, rng, scales=(1.0, 2.5, 6))
    obj_mask = np.zeros((size, size), np.uint8)
    cv2.ellipse(obj_mask, (size // 2, size // 2), (size // 2 - 1, int(size * 0.36)), 0, 0, 360, 1, -1)
    centre = np.array([width / 2, height / 2], np.float64)
    angle = 0.0
    velocity = rng.uniform(-max_step_px, max_step_px, 2)
    spin = rng.uniform(-max_step_deg, max_step_deg)
    frames, masks, poses = [], [], []
    margin = np.array([size * 0.35, size * 0.3])
    for _ in range(num_frames):
        rotation = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
        pose = rotation.copy()
        pose[:, 2] += centre - size / 2
        frame_obj = cv2.warpAffine(obj_texture, pose, (width, height), flags=cv2.INTER_LINEAR)
        frame_mask = cv2.warpAffine(obj_mask, pose, (width, height), flags=cv2.INTER_NEAREST).astype(bool)
        frames.append(np.where(frame_mask[..., None], frame_obj, background))
        masks.append(frame_mask)
        poses.append(pose)
        # Bounce off the borders so the object stays in view; turn the velocity a little every frame.
        centre += velocity
        for axis, limit in ((0, width), (1, height)):
            if not margin[axis] <= centre[axis] <= limit - margin[axis]:
                velocity[axis] = -velocity[axis]
                centre[axis] = np.clip(centre[axis], margin[axis], limit - margin[axis])
        velocity = np.clip(velocity + rng.normal(0, 0.3, 2), -max_step_px, max_step_px)
        angle += spin
    return SyntheticVideo(frames, masks, poses)
