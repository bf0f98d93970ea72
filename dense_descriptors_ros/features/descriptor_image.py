"""Dense descriptor images as torch tensors: checked conversion, patch-mean smoothing and window offsets.

Patch means in windows around points, at any output stride, are read by ``PatchDescriptors`` (features/sampling.py).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F


def as_descriptor_tensor(descriptors: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Numpy (H, W, D) or torch (D, H, W) / (1, D, H, W) unit-norm descriptors -> float32 torch (D, H, W).

    Numpy float32 input and torch input are not copied (the result may be a strided view). Raises ValueError for
    other shapes, non-float data and non-finite values.
    """
    if isinstance(descriptors, np.ndarray):
        if descriptors.ndim != 3:
            raise ValueError(f"expected a numpy descriptor image (H, W, D), got shape {descriptors.shape}")
        if not np.issubdtype(descriptors.dtype, np.floating):
            raise ValueError(f"expected float descriptors, got dtype {descriptors.dtype}")
        chw = torch.from_numpy(np.ascontiguousarray(descriptors, dtype=np.float32)).permute(2, 0, 1)
    elif isinstance(descriptors, torch.Tensor):
        if descriptors.dim() == 4 and descriptors.shape[0] == 1:
            descriptors = descriptors[0]
        if descriptors.dim() != 3:
            raise ValueError(f"expected a torch descriptor image (D, H, W), got shape {tuple(descriptors.shape)}")
        if not descriptors.is_floating_point():
            raise ValueError(f"expected float descriptors, got dtype {descriptors.dtype}")
        chw = descriptors.float()
    else:
        kind = type(descriptors).__name__
        raise ValueError(f"expected a numpy array (H, W, D) or torch tensor (D, H, W), got {kind}")
    if min(chw.shape) == 0:
        raise ValueError(f"descriptor image is empty: (D, H, W) = {tuple(chw.shape)}")
    if not all_finite(chw):
        raise ValueError("descriptor image contains NaN or infinite values")
    return chw


def all_finite(descriptors: np.ndarray | torch.Tensor) -> bool:
    """Whether a descriptor image (numpy or torch) holds no NaN or inf: one sum, far cheaper than isfinite() on every
    value (NaN and inf propagate into it, and unit-norm descriptors cannot overflow it)."""
    return math.isfinite(float(descriptors.sum()))


def smooth_descriptors(chw: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Whole image: mean descriptor of the patch_size square around every pixel, renormalised to unit length."""
    if patch_size == 1:
        return chw
    pooled = F.avg_pool2d(chw[None], patch_size, stride=1, padding=patch_size // 2, count_include_pad=False)[0]
    return F.normalize(pooled, dim=0)


@lru_cache(maxsize=64)
def window_offsets(radius: int, device: torch.device, step: int = 1) -> torch.Tensor:
    """(K, 2) integer (dx, dy) offsets of a window of ``radius`` sampled every ``step`` pixels, row-major (dy outer,
    dx inner), symmetric about 0: (2r+1)^2 offsets at step 1. Cached (the trackers ask for the same few every frame):
    do not modify."""
    reach = radius - radius % step
    r = torch.arange(-reach, reach + 1, step, device=device)
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([dx.reshape(-1), dy.reshape(-1)], dim=1)
