"""features/sampling.py: descriptors at sub-pixel points (numpy, torch), at stride 1 and from lower-resolution maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dense_descriptors_ros.features.descriptor_image import smooth_descriptors, window_offsets
from dense_descriptors_ros.features.sampling import (
    PatchDescriptors,
    map_coordinates,
    sample_descriptor_maps,
    sample_descriptors,
)


def _unit_map(d: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Random unit descriptors (D, H, W), smooth enough that interpolating them means something."""
    raw = torch.randn(1, d, h, w, generator=torch.Generator().manual_seed(seed))
    return F.normalize(F.avg_pool2d(raw, 3, stride=1, padding=1), dim=1)[0]


def test_bilinear_sampling_is_exact_on_a_linear_field():
    h, w = 20, 30
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    field = np.stack([xs, ys, np.full_like(xs, 10.0)], axis=-1)
    kp = np.array([[3.25, 4.5], [17.75, 11.0], [0.0, 0.0]], np.float32)
    expected = np.column_stack([kp[:, 0], kp[:, 1], np.full(3, 10.0)])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(sample_descriptors(field, kp), expected, atol=1e-6)
    torch_field = torch.from_numpy(field).permute(2, 0, 1)[None]
    sampled = sample_descriptor_maps(torch_field, torch.from_numpy(kp)[None])[0]
    np.testing.assert_allclose(sampled.numpy(), expected, atol=1e-6)


def test_sampling_interpolates_clamps_and_normalises():
    desc = np.zeros((2, 2, 2), np.float32)
    desc[:, 0] = [1, 0]
    desc[:, 1] = [0, 1]
    sampled = sample_descriptors(desc, np.array([[0.5, 0.5], [0.0, 1.0], [5.0, -3.0]]))
    assert sampled.dtype == np.float32
    np.testing.assert_allclose(sampled, [[2**-0.5, 2**-0.5], [1, 0], [0, 1]], atol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        sample_descriptors(desc, np.zeros(3))
    with pytest.raises(ValueError, match=r"\(H, W, D\)"):
        sample_descriptors(desc[..., 0], np.zeros((1, 2)))


def test_torch_sampling_without_normalising_is_plain_bilinear():
    desc = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
    sampled = sample_descriptor_maps(desc, torch.tensor([[[1.5, 1.0], [3.0, 2.0]]]), normalize=False)
    assert sampled[0, 0].tolist() == pytest.approx([5.5, 17.5])  # between (1,1)=5 and (2,1)=6
    assert sampled[0, 1].tolist() == pytest.approx([11.0, 23.0])
    unit = sample_descriptor_maps(desc, torch.tensor([[[3.0, 2.0]]]))
    assert unit[0, 0].tolist() == pytest.approx((torch.tensor([11.0, 23.0]) / (11.0**2 + 23.0**2) ** 0.5).tolist())


def test_numpy_and_torch_sampling_agree_at_every_stride():
    chw = _unit_map(8, 12, 16)
    rng = np.random.default_rng(1)
    for stride in (1, 2, 4):
        points = rng.uniform(-2.0, [16 * stride + 1, 12 * stride + 1], (300, 2))
        from_numpy = sample_descriptors(chw.permute(1, 2, 0).numpy(), points, output_stride=stride)
        from_torch = sample_descriptor_maps(chw[None], torch.from_numpy(points)[None], output_stride=stride)[0]
        np.testing.assert_allclose(from_numpy, from_torch.numpy(), atol=2e-6)


@pytest.mark.parametrize("stride", [2, 4, 8])
def test_a_stride_s_map_samples_like_its_upsampled_image(stride):
    """Sampling the low-resolution map at an image pixel = upsampling it (align_corners=False), renormalising, reading
    the pixel: border pixels included, where both clamp to the map's edge."""
    h, w = 9, 13
    chw = _unit_map(16, h, w, seed=stride)
    full = F.normalize(F.interpolate(chw[None], size=(h * stride, w * stride), mode="bilinear", align_corners=False))
    ys, xs = np.mgrid[0 : h * stride, 0 : w * stride]
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    expected = full[0].permute(1, 2, 0).reshape(-1, 16).numpy()
    from_numpy = sample_descriptors(chw.permute(1, 2, 0).numpy(), pixels, output_stride=stride)
    np.testing.assert_allclose(from_numpy, expected, atol=2e-6)
    from_torch = sample_descriptor_maps(chw[None], torch.from_numpy(pixels).float()[None], output_stride=stride)[0]
    np.testing.assert_allclose(from_torch.numpy(), expected, atol=2e-6)


def test_map_coordinates_keep_pixel_centres():
    points = np.array([[0.0, 0.0], [1.5, 3.5], [7.0, 2.0]])
    assert map_coordinates(points, 1) is points
    # Stride 4: pixels 0..3 cover map cell 0, whose centre is between pixels 1 and 2.
    np.testing.assert_allclose(map_coordinates(points, 4), [[-0.375, -0.375], [0.0, 0.5], [1.375, 0.125]])
    with pytest.raises(ValueError, match="output_stride"):
        map_coordinates(points, 0)


def test_patch_sampling_equals_sampling_the_smoothed_image():
    """Reading only the windows around each point gives what smoothing the whole image and sampling it gives."""
    chw = _unit_map(8, 20, 24)
    hwd = chw.permute(1, 2, 0).contiguous()
    points = torch.tensor([[3.25, 4.5], [10.0, 10.0], [17.75, 13.1], [0.0, 0.4], [23.0, 19.0]])
    for patch_size in (1, 3, 5):
        smoothed = smooth_descriptors(chw, patch_size)
        expected = sample_descriptor_maps(smoothed[None], points[None])[0]
        image = PatchDescriptors(hwd.permute(2, 0, 1), patch_size)
        np.testing.assert_allclose(image.at(points).numpy(), expected, atol=1e-5)
        image.cover(points.round().long(), 2)  # the same read from a block smoothed once
        np.testing.assert_allclose(image.at(points).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("cover", [False, True])
def test_patch_windows_hold_the_patch_means_and_flag_pixels_outside(cover):
    chw = F.normalize(torch.randn(4, 10, 12, generator=torch.Generator().manual_seed(0)), dim=0)
    smoothed = smooth_descriptors(chw, 3)
    centres = torch.tensor([[5, 5], [0, 0], [11, 9], [6, 4]])
    image = PatchDescriptors(chw, 3)
    if cover:
        image.cover(centres, 3)
        assert image._block is not None  # the windows overlap: one block is cheaper than reading them
    windows, valid = image.windows(centres, 1)
    assert windows.shape == (4, 9, 4) and valid.shape == (4, 9)
    for n, (cx, cy) in enumerate(centres.tolist()):
        for k, (dx, dy) in enumerate(window_offsets(1, chw.device).tolist()):
            x, y = cx + dx, cy + dy
            inside = 0 <= x < 12 and 0 <= y < 10
            assert bool(valid[n, k]) == inside
            if inside:
                torch.testing.assert_close(windows[n, k], smoothed[:, y, x], atol=1e-5, rtol=0)
    empty, empty_valid = image.windows(centres[:0], 1)  # no tracks: empty reads, no error
    assert empty.shape == (0, 9, 4) and empty_valid.shape == (0, 9) and image.at(torch.zeros(0, 2)).shape == (0, 4)
    with pytest.raises(ValueError, match="odd"):
        PatchDescriptors(chw, 4)


def test_a_coarse_map_reads_as_its_upsampling_without_building_it():
    """At output stride 4 the patch means at image pixels are those of the map upsampled to the image (bilinear
    with pixel centres aligned, renormalised: what DescriptorEngine.compute_tensor gives), read only where needed."""
    coarse = _unit_map(8, 6, 7)
    up = F.normalize(F.interpolate(coarse[None], size=(24, 28), mode="bilinear", align_corners=False), dim=1)[0]
    smoothed = smooth_descriptors(up, 5)
    image = PatchDescriptors(coarse, 5, output_stride=4)
    assert (image.height, image.width) == (24, 28)
    centres = torch.tensor([[3, 2], [14, 11], [27, 23], [20, 5]])
    for cover in (False, True):
        if cover:
            image.cover(centres, 3)
        windows, valid = image.windows(centres, 3)
        for n, (cx, cy) in enumerate(centres.tolist()):
            for k, (dx, dy) in enumerate(window_offsets(3, coarse.device).tolist()):
                if valid[n, k]:
                    torch.testing.assert_close(windows[n, k], smoothed[:, cy + dy, cx + dx], atol=1e-5, rtol=0)
    points = torch.tensor([[3.3, 2.6], [14.5, 11.25], [26.9, 22.2]])
    expected = sample_descriptor_maps(smoothed[None], points[None])[0]
    np.testing.assert_allclose(image.at(points).numpy(), expected, atol=1e-5)
    # Cells of the global search: whole map cells at re-detection stride 4, pairs of cells at 8.
    cells, side, hs, ws = image.pooled(4)
    assert (side, hs, ws) == (4, 6, 7)
    torch.testing.assert_close(cells, coarse.permute(1, 2, 0).reshape(-1, 8), atol=1e-6, rtol=0)
    cells, side, hs, ws = image.pooled(8)
    assert (side, hs, ws) == (8, 3, 3) and cells.shape == (9, 8)
