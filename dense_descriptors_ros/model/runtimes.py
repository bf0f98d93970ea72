"""Where a DescriptorNet runs: PyTorch (CPU, or CUDA with fp16), or its ONNX export in ONNX Runtime or OpenVINO on
the CPU. Every backend maps a float (N, 3, H, W) image batch, already resized, to the network's float32 output; the
engine (engine.py) keeps the policy around it.

``auto`` is PyTorch on a CUDA device, else the fastest CPU runtime installed: OpenVINO, then ONNX Runtime, then
PyTorch (measured in benchmarks/test_bench_engine.py, README "Descriptor engine speed").
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path
from typing import Protocol

import torch

from dense_descriptors_ros.model.graph_cache import cache_folder, open_cached_graph
from dense_descriptors_ros.model.network import DescriptorNet
from dense_descriptors_ros.model.omp_wait import OMP_WAIT_POLICIES, torch_omp_wait_policy

RUNTIMES = ("auto", "torch", "onnxruntime", "openvino")
CPU_RUNTIMES = ("openvino", "onnxruntime")  # the fastest first
log = logging.getLogger(__name__)


class Backend(Protocol):
    name: str

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


def runtime_installed(name: str) -> bool:
    """True when the Python package of runtime ``name`` can be imported (torch always can)."""
    return name == "torch" or importlib.util.find_spec(name) is not None


def choose_runtime(runtime: str, device: torch.device) -> str:
    """The runtime to use for ``runtime`` (one of RUNTIMES) on ``device``; ValueError for one that cannot work."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r} is not one of {list(RUNTIMES)}")
    if runtime == "auto":
        if device.type != "cpu":
            return "torch"
        return next((name for name in CPU_RUNTIMES if runtime_installed(name)), "torch")
    if runtime != "torch":
        if device.type != "cpu":
            raise ValueError(f"runtime {runtime!r} runs on the CPU, not on {device}; use device cpu or runtime torch")
        if not runtime_installed(runtime):
            raise ValueError(f"runtime {runtime!r} is not installed (pip install {runtime}); use 'auto' or 'torch'")
    return runtime


def check_threads(num_threads: int, omp_wait_policy: str | None) -> None:
    if num_threads < 0:
        raise ValueError(f"num_threads must be >= 0 (0 = the runtime's default), got {num_threads}")
    if omp_wait_policy is not None and omp_wait_policy not in OMP_WAIT_POLICIES:
        raise ValueError(f"omp_wait_policy {omp_wait_policy!r} is not one of {list(OMP_WAIT_POLICIES)}")


class TorchBackend:
    """The network in PyTorch; ``num_threads`` > 0 sets torch's (process-wide) intra-op thread count. A wait policy
    asked for (not None) that torch did not start with is logged: torch reads it only at import (omp_wait.py)."""

    name = "torch"

    def __init__(self, net: DescriptorNet, num_threads: int, omp_wait_policy: str | None) -> None:
        self.net = net
        if num_threads:
            torch.set_num_threads(num_threads)
        if omp_wait_policy is not None and omp_wait_policy != torch_omp_wait_policy():
            log.warning(
                f"omp_wait_policy {omp_wait_policy}: torch's OpenMP threads run with {torch_omp_wait_policy()}, "
                "fixed when torch was imported (set OMP_WAIT_POLICY in the environment, or start the node or command "
                "with the parameter)"
            )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).float()


class OnnxRuntimeBackend:
    """The ONNX graph in ONNX Runtime's CPU provider; a passive wait policy turns its worker threads' spinning off."""

    name = "onnxruntime"

    def __init__(self, graph: Path, num_threads: int, omp_wait_policy: str | None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if omp_wait_policy == "active" else "0")
        self.session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"image": images.contiguous().numpy()})[0])


class OpenVinoBackend:
    """The ONNX graph compiled by OpenVINO for the CPU, in fp32 (never the bf16 it picks by default on CPUs that have
    it), one stream for latency. It compiles one model per input shape (static shapes ran faster than the dynamic
    graph), keeps the last few and caches the compiled blobs in ``cache_dir``. OpenVINO's TBB workers have no spin
    switch: a passive policy leaves them unpinned so the OS can move them off cores that other processes use."""

    name = "openvino"
    MAX_SHAPES = 4  # a camera has one frame size; a few more cover warm-up and a resized stream

    def __init__(self, graph: Path, num_threads: int, omp_wait_policy: str | None, cache_dir: Path) -> None:
        import openvino

        self.core = openvino.Core()
        self.model = self.core.read_model(str(graph))
        self.config = {
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "ENABLE_CPU_PINNING": omp_wait_policy == "active",
            "CACHE_DIR": str(cache_dir),
        }
        if num_threads:
            self.config["INFERENCE_NUM_THREADS"] = num_threads
        self.requests: dict[tuple[int, ...], object] = {}
        # An infer request runs one inference at a time ("Infer Request is busy"), and a node's worker may share the
        # engine with a caller on another thread (a service, a test): serialise them.
        self._lock = threading.Lock()
        self._request((1, 3, 64, 64))  # compile once now: a bad graph file fails here, not at the first frame

    def _request(self, shape: tuple[int, ...]) -> object:
        request = self.requests.pop(shape, None)
        if request is None:
            if len(self.requests) >= self.MAX_SHAPES:
                self.requests.pop(next(iter(self.requests)))
            self.model.reshape(list(shape))
            request = self.core.compile_model(self.model, "CPU", self.config).create_infer_request()
        self.requests[shape] = request  # most recently used last
        return request

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        with self._lock:
            request = self._request(tuple(images.shape))
            # The output tensor's memory is the request's own and is overwritten by the next inference: copy it out.
            return torch.from_numpy(request.infer([images.contiguous().numpy()])[0].copy())


def open_backend(
    net: DescriptorNet,
    runtime: str,
    device: torch.device,
    checkpoint: str | Path | None = None,
    num_threads: int = 0,
    omp_wait_policy: str | None = None,
) -> Backend:
    """The backend for ``runtime`` (see :func:`choose_runtime`) running ``net``, which is already on ``device``. CPU
    runtimes run the ONNX graph cached for ``checkpoint`` (graph_cache.py), exported on their first start; they
    spin only when ``omp_wait_policy`` is 'active'."""
    check_threads(num_threads, omp_wait_policy)
    runtime = choose_runtime(runtime, device)
    if runtime == "torch":
        return TorchBackend(net, num_threads, omp_wait_policy)
    folder = cache_folder(checkpoint)
    if runtime == "onnxruntime":
        return open_cached_graph(net, folder, lambda path: OnnxRuntimeBackend(path, num_threads, omp_wait_policy))
    return open_cached_graph(
        net, folder, lambda path: OpenVinoBackend(path, num_threads, omp_wait_policy, folder / "openvino")
    )
