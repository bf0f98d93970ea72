"""`dense-descriptors export`: a checkpoint to ONNX, checked against PyTorch with onnxruntime (CPU)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from dense_descriptors_ros.model.checkpoint import load_checkpoint
from dense_descriptors_ros.model.onnx_export import export_onnx, onnx_max_abs_diff

log = logging.getLogger(__name__)


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="checkpoint folder (weights.pt + model.yaml)")
    parser.add_argument("--out", default=None, help="ONNX file to write (default: <model>/model.onnx)")
    parser.add_argument("--height", type=int, default=240, help="height of the example input used for tracing")
    parser.add_argument("--width", type=int, default=320, help="width of the example input used for tracing")


def run_export(args: argparse.Namespace) -> int:
    net = load_checkpoint(args.model)
    out = Path(args.out) if args.out else Path(args.model) / "model.onnx"
    export_onnx(net, out, args.height, args.width)
    # Check at a size other than the traced one: H and W must stay dynamic.
    check = torch.rand(1, 3, args.height + 17, args.width - 9)
    diff = onnx_max_abs_diff(net, out, check)
    print(f"wrote {out}; onnxruntime vs PyTorch max abs diff {diff:.2e} on a {check.shape[2]}x{check.shape[3]} image")
    return 0 if diff < 1e-3 else 1
