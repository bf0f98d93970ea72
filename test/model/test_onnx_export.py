"""ONNX export with dynamic sizes, checked against PyTorch."""

import torch

from dense_descriptors_ros.model.onnx_export import export_onnx, onnx_max_abs_diff


def test_onnx_export_matches_pytorch_on_other_sizes(tmp_path, make_net):
    net = make_net(dim=4)
    path = export_onnx(net, tmp_path / "model.onnx", height=64, width=64)
    diff = onnx_max_abs_diff(net, path, torch.rand(2, 3, 50, 70))
    assert diff < 1e-4
