"""Descriptors at sub-pixel image points: bilinear interpolation, clamped to the map, renormalised to unit length.

A descriptor map may have a lower resolution than the image it describes (a network with output stride s > 1):
map cell (u, v) then covers the s x s image pixels it was computed from, and the centre of image pixel x lies at
map coordinate (x + 0.5) / s - 0.5 (:func:`map_coordinates`). Sampling a stride-s map at an image pixel therefore
gives what bilinearly upsampling the map to the image (``align_corners=False``) and renormalising would give there,
without building the full-size map. At stride 1 map and image coordinates are the same.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from dense_descriptors_ros.features.descriptor_image import patch_windows

Points = TypeVar("Points", np.ndarray, torch.Tensor)


def map_coordinates(points: Points, output_stride: int = 1) -> Points:
    """Image (x, y) points -> coordinates in a descriptor map of ``output_stride`` (pixel centres stay centres)."""
    if output_stride < 1:
        raise ValueError(f"output_stride must be >= 1, got {output_stride}")
    if output_stride == 1:
        return points
    return (points + 0.5) / output_stride - 0.5


def sample_descriptors(descriptor_image: np.ndarray, points: np.ndarray, output_stride: int = 1) -> np.ndarray:
    """(N, D) float32 unit descriptors of an (H, W, D) descriptor map at (N, 2) image points, bilinear.

    Points outside the map are clamped to its border.
    """
    if not isinstance(descriptor_image, np.ndarray) or descriptor_image.ndim != 3:
        shape = getattr(descriptor_image, "shape", type(descriptor_image))
        raise ValueError(f"descriptors must be a numpy (H, W, D) descriptor image, got {shape}")
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be (N, 2) (x, y), got shape {points.shape}")
    uv = map_coordinates(points.astype(np.float64), output_stride)
    h, w = descriptor_image.shape[:2]
    x = np.clip(uv[:, 0], 0, w - 1)
    y = np.clip(uv[:, 1], 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(int), w - 2) if w > 1 else np.zeros(len(x), int)
    y0 = np.minimum(np.floor(y).astype(int), h - 2) if h > 1 else np.zeros(len(y), int)
    ax = (x - x0)[:, None].astype(np.float32)
    ay = (y - y0)[:, None].astype(np.float32)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    d = (
        descriptor_image[y0, x0] * (1 - ax) * (1 - ay)
        + descriptor_image[y0, x1] * ax * (1 - ay)
        + descriptor_image[y1, x0] * (1 - ax) * ay
        + descriptor_image[y1, x1] * ax * ay
    )
    return (d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)).astype(np.float32, copy=False)


def sample_descriptor_maps(
    descriptors: torch.Tensor, points: torch.Tensor, output_stride: int = 1, normalize: bool = True
) -> torch.Tensor:
    """Batched and differentiable: descriptors (B, D, H, W) at image points (B, N, 2) (x, y) -> (B, N, D), bilinear.

    Points outside the map are clamped to its border. ``normalize=False`` returns the interpolated descriptors as
    they are (shorter than one between pixels of different descriptors).
    """
    _, _, h, w = descriptors.shape
    uv = map_coordinates(points.to(descriptors.dtype), output_stride)
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=points.device, dtype=descriptors.dtype)
    grid = (uv * scale - 1.0).unsqueeze(2)  # (B, N, 1, 2) in [-1, 1] with align_corners=True: map cell centres
    sampled = F.grid_sample(descriptors, grid, mode="bilinear", padding_mode="border", align_corners=True)
    sampled = sampled[..., 0].permute(0, 2, 1)
    return F.normalize(sampled, dim=-1) if normalize else sampled


def sample_patch_descriptors(hwd: torch.Tensor, positions: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Bilinearly interpolated patch-mean unit descriptors (N, D) of an (H, W, D) image at (x, y) ``positions``.

    Reads only the 3x3 patch windows around the points (:func:`patch_windows`); corners outside the image get no
    weight.
    """
    base = positions.floor()
    windows, valid = patch_windows(hwd, base.long(), 1, patch_size)  # 3x3 windows around floor(position)
    fx, fy = (positions - base).unbind(1)
    corners = [4, 5, 7, 8]  # (0, 0), (1, 0), (0, 1), (1, 1) relative to floor(position)
    weights = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], dim=1) * valid[:, corners]
    return F.normalize((windows[:, corners] * weights[..., None]).sum(1), dim=1)
