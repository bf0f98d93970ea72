"""DescriptorNet, checkpoint folder format, DescriptorEngine, ONNX export, fixed-PCA colouring."""

import numpy as np
import pytest
import torch
import yaml

from dense_descriptors_ros.model.checkpoint import CheckpointError, load_checkpoint, model_id, save_checkpoint
from dense_descriptors_ros.model.descriptor_colors import DescriptorColorizer
from dense_descriptors_ros.model.engine import DescriptorEngine, resolve_device
from dense_descriptors_ros.model.network import BACKBONES, DescriptorNet, ModelConfig, normalize_descriptors
from dense_descriptors_ros.model.onnx_export import export_onnx, onnx_max_abs_diff


def _net(backbone="mobilenet_v2", dim=8, **kw):
    torch.manual_seed(0)
    return DescriptorNet(ModelConfig(backbone=backbone, descriptor_dim=dim, pretrained=False, **kw)).eval()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_gives_full_resolution_unit_norm_for_odd_sizes(backbone):
    net = _net(backbone, dim=5)
    with torch.inference_mode():
        out = net(torch.rand(3, 3, 37, 53))
    assert out.shape == (3, 5, 37, 53)
    np.testing.assert_allclose(out.norm(dim=1).numpy(), 1.0, atol=1e-5)


def test_unit_norm_is_per_pixel_for_any_batch_size():
    # Dense Object Nets divided by a batch-wide norm; ours must not depend on the other images in the batch.
    net = _net()
    x = torch.rand(4, 3, 32, 32)
    with torch.inference_mode():
        batch = net(x)
        single = net(x[2:3])
    torch.testing.assert_close(batch[2:3], single, atol=1e-5, rtol=1e-4)


def test_channel_groups_are_normalised_separately_and_whole_vector_unit_norm():
    desc = normalize_descriptors(torch.randn(2, 6, 4, 4), (2, 4))
    np.testing.assert_allclose(desc.norm(dim=1).numpy(), 1.0, atol=1e-5)
    np.testing.assert_allclose(desc[:, :2].norm(dim=1).numpy(), (2 / 6) ** 0.5, atol=1e-5)
    with pytest.raises(ValueError, match="channel_groups"):
        ModelConfig(descriptor_dim=6, channel_groups=(2, 3))


def test_config_rejects_unknown_backbone_and_dim():
    with pytest.raises(ValueError, match="backbone"):
        ModelConfig(backbone="vgg")
    with pytest.raises(ValueError, match="descriptor_dim"):
        ModelConfig(descriptor_dim=0)


def test_forward_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        _net()(torch.rand(1, 1, 32, 32))


def test_checkpoint_round_trip_in_eval_mode(tmp_path):
    net = _net("resnet18", dim=4)
    folder = save_checkpoint(tmp_path / "ck", net.train(), {"epochs": 3}, image_size=(48, 64))
    meta = yaml.safe_load((folder / "model.yaml").read_text())
    assert meta["model"]["backbone"] == "resnet18" and meta["image_size"] == [48, 64]
    assert meta["provenance"] == {"epochs": 3}
    loaded = load_checkpoint(folder)
    assert not loaded.training
    x = torch.rand(1, 3, 40, 40)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), net.eval()(x))
    assert model_id(folder) == meta["weights_sha256"][:12]


def test_checkpoint_errors_name_file_and_mismatch(tmp_path):
    folder = save_checkpoint(tmp_path / "ck", _net(dim=4))
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="descriptor_dim is 4, expected 16"):
        load_checkpoint(folder, expected_descriptor_dim=16)

    meta_path = folder / "model.yaml"
    meta = yaml.safe_load(meta_path.read_text())

    meta_path.write_text(yaml.safe_dump({**meta, "model": {**meta["model"], "descriptor_dim": 9}}))
    with pytest.raises(CheckpointError, match=r"weights.pt: head.weight has shape \(4, 64, 3, 3\).*D=9"):
        load_checkpoint(folder)

    meta_path.write_text(yaml.safe_dump({**meta, "model": {**meta["model"], "backbone": "resnet34"}}))
    with pytest.raises(CheckpointError, match="does not fit a resnet34"):
        load_checkpoint(folder)

    meta_path.write_text(yaml.safe_dump({**meta, "model": {**meta["model"], "colour": 1}}))
    with pytest.raises(CheckpointError, match=r"model\.yaml: invalid model section.*colour"):
        load_checkpoint(folder)

    meta_path.write_text(yaml.safe_dump({**meta, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format_version is 99"):
        load_checkpoint(folder)

    meta_path.write_text(yaml.safe_dump(meta))
    (folder / "weights.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="content hash"):
        load_checkpoint(folder)

    meta_path.write_text(": not yaml : [")
    with pytest.raises(CheckpointError, match="not valid YAML"):
        load_checkpoint(folder)
    meta_path.unlink()
    with pytest.raises(CheckpointError, match=r"model\.yaml: missing"):
        load_checkpoint(folder)


def test_engine_returns_input_resolution_numpy_and_resizes_large_inputs():
    engine = DescriptorEngine(_net(dim=6), device="cpu", max_side=64)
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


def test_engine_rejects_bad_inputs():
    engine = DescriptorEngine(_net(), device="cpu", warmup=False)
    with pytest.raises(ValueError, match="empty"):
        engine.compute(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        engine.compute(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="same size"):
        engine.compute_batch([np.zeros((10, 10, 3), np.uint8), np.zeros((12, 10, 3), np.uint8)])
    with pytest.raises(ValueError, match="half precision"):
        DescriptorEngine(_net(), device="cpu", half=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


def test_onnx_export_matches_pytorch_on_other_sizes(tmp_path):
    net = _net(dim=4)
    path = export_onnx(net, tmp_path / "model.onnx", height=64, width=64)
    diff = onnx_max_abs_diff(net, path, torch.rand(2, 3, 50, 70))
    assert diff < 1e-4


def test_colorizer_is_fixed_after_first_frame():
    rng = np.random.default_rng(0)
    first = rng.normal(size=(20, 30, 8)).astype(np.float32)
    colorizer = DescriptorColorizer()
    a = colorizer(first)
    assert a.shape == (20, 30, 3) and a.dtype == np.uint8
    # A very different second frame must not change the mapping of the first frame's descriptors.
    colorizer(first * 10 + 3)
    np.testing.assert_array_equal(colorizer(first), a)
    with_nan = first.copy()
    with_nan[0, 0, 0] = np.nan
    assert (colorizer(with_nan)[0, 0] == 0).all()
    with pytest.raises(ValueError, match="D=8"):
        colorizer(first[..., :4])
