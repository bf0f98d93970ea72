"""features/descriptor_image.py and distance.py: checked tensors, patch means, distances."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dense_descriptors_ros.features.descriptor_image import (
    as_descriptor_tensor,
    smooth_descriptors,
)
from dense_descriptors_ros.features.distance import descriptor_distance


def test_numpy_and_torch_images_become_the_same_chw_tensor():
    hwd = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float32)
    chw = as_descriptor_tensor(hwd)
    assert chw.shape == (3, 4, 5) and chw.data_ptr() == torch.from_numpy(hwd).data_ptr()  # a view, no copy
    assert torch.equal(as_descriptor_tensor(chw[None]), chw)
    assert as_descriptor_tensor(hwd.astype(np.float64)).dtype == torch.float32
    for bad, message in [
        (hwd[..., 0], r"\(H, W, D\)"),
        (torch.zeros(2, 1, 3, 4, 5), r"\(D, H, W\)"),
        (np.zeros((4, 5, 3), np.uint8), "float"),
        (np.zeros((0, 5, 3), np.float32), "empty"),
        (np.full((4, 5, 3), np.inf, np.float32), "NaN or infinite"),
        ([[1.0]], "numpy array"),
    ]:
        with pytest.raises(ValueError, match=message):
            as_descriptor_tensor(bad)


def test_patch_size_one_leaves_the_image_as_it_is():
    chw = F.normalize(torch.randn(4, 10, 12, generator=torch.Generator().manual_seed(0)), dim=0)
    assert smooth_descriptors(chw, 1) is chw


def test_descriptor_distance_from_similarity_numpy_and_torch():
    a = F.normalize(torch.randn(6, 5, generator=torch.Generator().manual_seed(1)), dim=1)
    b = F.normalize(torch.randn(7, 5, generator=torch.Generator().manual_seed(2)), dim=1)
    from_torch = descriptor_distance(a @ b.T)
    torch.testing.assert_close(from_torch, torch.cdist(a, b), atol=1e-5, rtol=0)
    from_numpy = descriptor_distance(a.numpy() @ b.numpy().T)
    assert isinstance(from_numpy, np.ndarray)
    np.testing.assert_allclose(from_numpy, from_torch.numpy(), atol=1e-6)
    assert descriptor_distance(np.float32(1.0 + 1e-6)) == 0.0  # rounding above 1 is not a NaN
    assert descriptor_distance(torch.tensor(-1.0)) == 2.0
