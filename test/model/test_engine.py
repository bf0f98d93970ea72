"""DescriptorEngine: numpy in and out at the input resolution, input checks, device choice."""

import numpy as np
import pytest
import torch

from dense_descriptors_ros.features.sampling import sample_descriptors
from dense_descriptors_ros.model.engine import DescriptorEngine, resolve_device


def test_engine_returns_input_resolution_numpy_and_resizes_large_inputs(make_net):
    engine = DescriptorEngine(make_net(dim=6), device="cpu", max_side=64)
    assert engine.device.type == "cpu"
    image = np.random.default_rng(0).integers(0, 255, (120, 90, 3), dtype=np.uint8)
    assert engine.inference_size(120, 90) == (64, 48)
    desc = engine.compute(image)
    assert desc.shape == (120, 90, 6) and desc.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(desc, axis=-1), 1.0, atol=1e-4)
    batch = engine.compute_batch([image, image[::-1].copy()])
    assert batch.shape == (2, 120, 90, 6)
    np.testing.assert_allclose(batch[0], desc, atol=1e-5)
    assert engine.compute(image[..., 0]).shape == (120, 90, 6)  # mono input


def test_engine_rejects_bad_inputs(make_net):
    engine = DescriptorEngine(make_net(), device="cpu", warmup=False)
    with pytest.raises(ValueError, match="empty"):
        engine.compute(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        engine.compute(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="same size"):
        engine.compute_batch([np.zeros((10, 10, 3), np.uint8), np.zeros((12, 10, 3), np.uint8)])
    with pytest.raises(ValueError, match="half precision"):
        DescriptorEngine(make_net(), device="cpu", half=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


@pytest.mark.cuda
@pytest.mark.parametrize("half", [False, True], ids=["fp32", "fp16"])
def test_cuda_descriptors_match_cpu(make_net, half):
    images = [np.random.default_rng(k).integers(0, 255, (96, 128, 3), dtype=np.uint8) for k in range(3)]
    cpu = DescriptorEngine(make_net(dim=8), device="cpu").compute_batch(images)
    gpu = DescriptorEngine(make_net(dim=8), device="cuda", half=half).compute_batch(images)
    assert gpu.dtype == np.float32 and gpu.shape == cpu.shape
    cosine = (cpu * gpu).sum(-1)
    assert np.median(cosine) > (0.995 if half else 0.9999) and cosine.min() > (0.95 if half else 0.999)


def test_coarse_map_is_the_networks_own_output_and_upsamples_to_compute(make_net):
    net = make_net(dim=8, output_stride=4)
    engine = DescriptorEngine(net, device="cpu", max_side=64, warmup=False)
    image = torch.rand(1, 3, 90, 120)
    coarse = engine.compute_coarse_tensor(image)
    assert engine.output_stride == 4
    assert coarse.shape == (1, 8, 12, 16)  # inference 48x64 at stride 4
    torch.testing.assert_close(coarse.norm(dim=1), torch.ones(1, 12, 16))
    full = engine.compute_tensor(image, output_size=(48, 64))
    # A cell's centre (4 i + 1.5, 4 j + 1.5) lies between full-resolution pixels; their mean is the cell's direction.
    centre = full[..., 4 * 5 + 1 : 4 * 5 + 3, 4 * 7 + 1 : 4 * 7 + 3].mean(dim=(-2, -1))
    assert torch.nn.functional.cosine_similarity(centre, coarse[..., 5, 7]).item() > 0.999


@pytest.mark.parametrize(
    ("size", "max_side", "stride"),
    [((48, 64), 64, 4), ((96, 128), 64, 8), ((90, 120), 64, 1), ((50, 64), 64, 1)],
    ids=["camera-size", "camera-twice-the-inference-size", "non-integer-scale", "odd-map"],
)
def test_compute_map_gives_the_networks_own_map_where_its_cells_tile_the_image(make_net, size, max_side, stride):
    engine = DescriptorEngine(make_net(dim=8, output_stride=4), device="cpu", max_side=max_side, warmup=False)
    image = np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)
    desc, got = engine.compute_map(image)
    assert got == stride == engine.map_stride(*size)
    assert desc.shape == (size[0] // stride, size[1] // stride, 8) and desc.flags.c_contiguous
    if stride == 1:  # the image's own pixels: what compute gives
        np.testing.assert_array_equal(desc, engine.compute(image))
        return
    # Sampled at image pixels the map gives the upsampled image's descriptors (cell centres at k i + (k - 1) / 2).
    full = engine.compute(image)
    pixels = np.array([[10, 7], [33, 20], [stride + 3, stride - 1]], np.float32)
    sampled = sample_descriptors(desc, pixels, stride)
    cosine = (sampled * full[pixels[:, 1].astype(int), pixels[:, 0].astype(int)]).sum(-1)
    assert cosine.min() > (0.9999 if stride == 4 else 0.99)


def test_compute_map_of_a_full_resolution_network_is_compute(make_net):
    engine = DescriptorEngine(make_net(dim=8), device="cpu", warmup=False)
    image = np.random.default_rng(1).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    desc, stride = engine.compute_map(image)
    assert stride == 1
    np.testing.assert_array_equal(desc, engine.compute(image))
    with pytest.raises(ValueError, match="empty"):
        engine.compute_map(np.zeros((0, 10, 3), np.uint8))
