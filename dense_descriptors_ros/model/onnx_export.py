"""ONNX export of a DescriptorNet, and a check that onnxruntime (CPU) gives the same descriptors as PyTorch.

The exported graph takes ``image`` float (N, 3, H, W) RGB in [0, 1] with dynamic N, H and W (the input
normalisation and stride padding are inside it) and returns ``descriptors`` (N, D, H, W), unit norm.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from dense_descriptors_ros.model.network import DescriptorNet

OPSET = 17


def export_onnx(net: DescriptorNet, path: str | Path, height: int = 240, width: int = 320) -> Path:
    """Write ``net`` as ONNX to ``path`` (traced at height x width; H and W stay dynamic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = net.cpu().eval()
    example = torch.rand(1, 3, height, width)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python ints are expected here
        torch.onnx.export(
            net,
            (example,),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=["descriptors"],
            dynamic_axes={"image": dynamic, "descriptors": dynamic},
            opset_version=OPSET,
        )
    return path


def onnx_max_abs_diff(net: DescriptorNet, path: str | Path, images: torch.Tensor) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's descriptors on ``images``."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours = session.run(["descriptors"], {"image": images.cpu().numpy().astype(np.float32)})[0]
    with torch.inference_mode():
        reference = net.cpu().eval()(images.cpu()).numpy()
    if ours.shape != reference.shape:
        raise ValueError(f"onnxruntime returned shape {ours.shape}, PyTorch {reference.shape}")
    return float(np.abs(ours - reference).max())
