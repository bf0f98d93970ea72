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


def _box_sums(x: torch.Tensor, k: int) -> torch.Tensor:
    """Sums over every k x k square of dims 1 and 2 of (N, S1, S2, D) ("valid" region: each shrinks by k - 1).

    A depthwise convolution with a kernel of ones on the channels-last view: one pass over the data, 5x faster on
    the CPU than shifted adds or cumulative sums (which also lose precision), and no layout copy either way.
    """
    if k == 1:
        return x
    ones = x.new_ones(x.shape[-1], 1, k, k)
    return F.conv2d(x.permute(0, 3, 1, 2), ones, groups=x.shape[-1]).permute(0, 2, 3, 1)


class PatchDescriptors:
    """Patch-mean unit descriptors at the integer pixels of the image a descriptor map describes, read on demand.

    ``chw`` (D, H, W) is a unit-norm map of ``output_stride`` s: it describes an (s H, s W) image whose pixel
    descriptors are the map sampled there (:func:`sample_descriptor_maps`: bilinear and renormalised, what upsampling
    the map would give; at s = 1 the map itself), so positions are always image pixels. A patch mean is the unit mean
    of the pixel descriptors in the ``patch_size`` square around a pixel, pixels outside the image left out.

    Reading windows around points costs a box sum per window; :meth:`cover` smooths the block that bounds many
    overlapping windows once instead, where that is cheaper, and later reads inside it are plain gathers.
    """

    def __init__(self, chw: torch.Tensor, patch_size: int, output_stride: int = 1) -> None:
        if patch_size < 1 or patch_size % 2 == 0:
            raise ValueError(f"patch_size must be a positive odd number, got {patch_size}")
        if isinstance(output_stride, bool) or not isinstance(output_stride, int | np.integer) or output_stride < 1:
            raise ValueError(f"the output stride must be a positive integer, got {output_stride!r}")
        output_stride = int(output_stride)
        self.chw, self.patch_size, self.output_stride = chw, patch_size, output_stride
        self.dim = chw.shape[0]
        self.height, self.width = chw.shape[1] * output_stride, chw.shape[2] * output_stride
        self._hwd = chw.permute(1, 2, 0).contiguous()  # no copy for (H, W, D)-contiguous input (numpy images)
        self._block: tuple[int, int, int, int, torch.Tensor] | None = None  # x0, y0, height, width, (h * w, D)
        self._pooled: dict[int, tuple[torch.Tensor, int, int, int]] = {}  # by cell side in map cells

    def pixels(self, xy: torch.Tensor) -> torch.Tensor:
        """Unit descriptors (M, D) at integer image pixels (M, 2) (x, y) inside the image."""
        if self.output_stride == 1:
            return self._hwd.reshape(-1, self.dim).index_select(0, xy[:, 1] * self.width + xy[:, 0])
        sampled = sample_descriptor_maps(self.chw[None], xy[None].to(self.chw.dtype), self.output_stride, False)[0]
        return F.normalize(sampled.contiguous(), dim=1)  # (M, D) rows: 10x faster to normalise than the strided view

    def cover(self, centres: torch.Tensor, radius: int) -> None:
        """Smooth once the block bounding the windows of ``radius`` around integer ``centres`` (N, 2), when it has
        fewer pixels than the windows together (overlapping windows); :meth:`windows` inside it then only gathers."""
        self._block = None
        if len(centres) == 0:
            return
        low = (centres.amin(0) - radius).clamp_min(0).tolist()
        high = torch.minimum(centres.amax(0) + radius, centres.new_tensor([self.width - 1, self.height - 1])).tolist()
        width, height = high[0] - low[0] + 1, high[1] - low[1] + 1
        if width <= 0 or height <= 0 or width * height >= len(centres) * (2 * radius + 1) ** 2:
            return
        means, _ = self._patch_means(centres.new_tensor([low]), height, width)
        self._block = (low[0], low[1], height, width, means.reshape(-1, self.dim))

    def windows(self, centres: torch.Tensor, radius: int, step: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch means (N, K, D) at the pixels around integer (x, y) ``centres`` (N, 2) at the offsets
        ``window_offsets(radius, device, step)`` (every pixel within ``radius`` at step 1, K = (2r+1)^2), row-major
        (dy outer, dx inner), and their validity (N, K): False for pixels outside the image."""
        reach = radius - radius % step
        size = 2 * (radius // step) + 1
        means, valid = self._read(centres - reach, size, size, step)
        return means.reshape(len(centres), size * size, self.dim), valid.reshape(len(centres), size * size)

    def at(self, positions: torch.Tensor) -> torch.Tensor:
        """Bilinearly interpolated patch-mean unit descriptors (N, D) at float (x, y) ``positions`` (N, 2).

        Corners outside the image get no weight.
        """
        base = positions.floor()
        means, valid = self._read(base.long(), 2, 2)
        fx, fy = (positions - base).unbind(1)
        weights = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], dim=1)
        weights = weights * valid.reshape(-1, 4)
        return F.normalize((means.reshape(-1, 4, self.dim) * weights[..., None]).sum(1), dim=1)

    def pooled(self, stride: int) -> tuple[torch.Tensor, int, int, int]:
        """Unit mean descriptors (hs * ws, D) of the image's square cells, row-major, with the cell side in pixels
        (``stride`` rounded to a multiple of the output stride, at most the image), hs and ws. The last pixels that
        do not fill a cell are left out."""
        k = max(1, min(round(stride / self.output_stride), *self.chw.shape[1:]))  # map cells per cell side
        if k not in self._pooled:  # a whole-image pass: once per image (re-detection and twins share it)
            hs, ws = self.chw.shape[1] // k, self.chw.shape[2] // k
            if k == 1:  # the map's own unit descriptors (a coarse map at the default stride): no pass at all
                cells = self._hwd.reshape(hs * ws, self.dim)
            else:
                rows = self._hwd[: hs * k, : ws * k].reshape(hs, k, ws * k * self.dim).sum(1)
                cells = rows.reshape(hs * ws, k, self.dim).sum(1)  # sums: the normalisation makes them means
                cells = F.normalize(cells, dim=1)
            self._pooled[k] = (cells, k * self.output_stride, hs, ws)
        return self._pooled[k]

    def _read(self, corners: torch.Tensor, height: int, width: int, step: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch means (N, height, width, D) of the grids of pixels every ``step`` from top-left pixels ``corners``
        (N, 2), and validity."""
        if self._block is not None and len(corners):
            x0, y0, block_h, block_w, means = self._block
            low, high = (bound.tolist() for bound in torch.aminmax(corners, dim=0))
            high = [high[0] + (width - 1) * step, high[1] + (height - 1) * step]  # the last pixels read
            # The pixels read are clamped to the image: inside the block when their extremes are (clamping is
            # monotonic).
            x_low, x_high = (min(max(x, 0), self.width - 1) - x0 for x in (low[0], high[0]))
            y_low, y_high = (min(max(y, 0), self.height - 1) - y0 for y in (low[1], high[1]))
            if x_low >= 0 and y_low >= 0 and x_high < block_w and y_high < block_h:
                xs, ys, valid = self._grid(corners, height, width, step)
                bx, by = xs.clamp(0, self.width - 1) - x0, ys.clamp(0, self.height - 1) - y0
                index = by[:, :, None] * block_w + bx[:, None, :]
                return means.index_select(0, index.reshape(-1)).reshape(*index.shape, self.dim), valid
        means, valid = self._patch_means(corners, (height - 1) * step + 1, (width - 1) * step + 1)
        return (means, valid) if step == 1 else (means[:, ::step, ::step], valid[:, ::step, ::step])

    def _patch_means(self, corners: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch means and validity of blocks (see :meth:`_read`) by box sums over the pixels they reach."""
        half = self.patch_size // 2
        means, valid = self._pixel_blocks(corners - half, height + 2 * half, width + 2 * half)
        if half:
            # Sums instead of means: the normalisation removes the pixel count.
            means = F.normalize(_box_sums(means, self.patch_size), dim=-1)
            valid = valid[:, half:-half, half:-half]
        return means, valid

    def _grid(
        self, corners: torch.Tensor, height: int, width: int, step: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pixel columns (N, width) and rows (N, height), every ``step``, of grids with top-left pixels ``corners``
        (N, 2), and which of their pixels lie inside the image (N, height, width)."""
        xs = corners[:, 0, None] + torch.arange(0, width * step, step, device=corners.device)
        ys = corners[:, 1, None] + torch.arange(0, height * step, step, device=corners.device)
        inside = ((ys >= 0) & (ys < self.height))[:, :, None] & ((xs >= 0) & (xs < self.width))[:, None, :]
        return xs, ys, inside

    def _pixel_blocks(self, corners: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel descriptors (N, height, width, D) of blocks with top-left pixels ``corners`` (N, 2), zero outside
        the image, and whether each pixel is inside."""
        xs, ys, inside = self._grid(corners, height, width)
        if len(corners) == 1:  # one block (cover): its rectangle inside the image, zero-padded
            x0, y0 = corners[0].tolist()
            xa, ya = max(x0, 0), max(y0, 0)
            inner = self._rectangle(
                xa, ya, max(min(x0 + width, self.width), xa), max(min(y0 + height, self.height), ya)
            )
            left, top = min(max(-x0, 0), width), min(max(-y0, 0), height)
            pad = (0, 0, left, width - left - inner.shape[1], top, height - top - inner.shape[0])
            return F.pad(inner, pad)[None], inside
        x, y = torch.broadcast_tensors(
            xs.clamp(0, self.width - 1)[:, None, :], ys.clamp(0, self.height - 1)[:, :, None]
        )
        values = self.pixels(torch.stack([x.reshape(-1), y.reshape(-1)], dim=1))
        values = values.reshape(len(corners), height, width, self.dim).masked_fill_(~inside[..., None], 0.0)
        return values, inside

    def _rectangle(self, xa: int, ya: int, xb: int, yb: int) -> torch.Tensor:
        """Pixel descriptors (yb - ya, xb - xa, D) of the image rectangle [xa, xb) x [ya, yb) inside the image."""
        s = self.output_stride
        if s == 1 or xb <= xa or yb <= ya:
            return self._hwd[ya:yb, xa:xb]
        # Bilinear upsampling of the map cells around the rectangle (the cell of each pixel and its neighbours)
        # samples every pixel as :meth:`pixels` does (the border clamped the same way), in one pass.
        u0, v0 = max(xa // s - 1, 0), max(ya // s - 1, 0)
        cells = self._hwd[v0 : (yb - 1) // s + 2, u0 : (xb - 1) // s + 2].permute(2, 0, 1)[None]
        cells = cells.contiguous(memory_format=torch.channels_last)  # channels-last in and out: (H, W, D) rows
        up = F.interpolate(cells, scale_factor=s, mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
        return F.normalize(up[ya - s * v0 : yb - s * v0, xa - s * u0 : xb - s * u0], dim=-1)
