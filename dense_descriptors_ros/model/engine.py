"""DescriptorEngine: runs a DescriptorNet on images, on the GPU when there is one and the CPU otherwise.

It owns the device choice, fp16 + channels_last on CUDA, the runtime (PyTorch, or ONNX Runtime / OpenVINO on the
CPU: runtimes.py), ``torch.inference_mode``, a warm-up pass, the resize
policy (shrink so the longer side is at most ``max_side``, keeping the aspect ratio; the network pads to its
stride itself) and returns descriptors at the input resolution (or another ``output_size``), as torch tensors or
numpy arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dense_descriptors_ros.model.checkpoint import load_checkpoint
from dense_descriptors_ros.model.network import DescriptorNet, normalize_descriptors, upsample_descriptors
from dense_descriptors_ros.model.runtimes import open_backend

log = logging.getLogger(__name__)


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> cuda when available else cpu; 'cuda' without a GPU is an error that says so."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine; use 'cpu' or 'auto'")
    return dev


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H, W, 3) or mono (H, W) / (H, W, 1) -> float (3, H, W) in [0, 1]."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"expected an RGB (H, W, 3) or mono (H, W) image, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: {image.shape[0]}x{image.shape[1]}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    return tensor.expand(3, -1, -1) if tensor.shape[0] == 1 else tensor


def fit_within(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(height, width) shrunk, keeping the aspect ratio, so the longer side is at most ``max_side`` (0 = as is)."""
    longest = max(height, width)
    if not max_side or longest <= max_side:
        return height, width
    scale = max_side / longest
    return max(1, round(height * scale)), max(1, round(width * scale))


class DescriptorEngine:
    """Inference wrapper around a DescriptorNet. Thread-compatible: one engine per worker thread.

    ``runtime`` runs the network (runtimes.py: torch, onnxruntime, openvino or auto); ``checkpoint`` is the folder
    the network came from, where a CPU runtime caches its exported graph. ``num_threads`` (0: the runtime's default)
    and ``omp_wait_policy`` (passive: idle threads sleep instead of spinning; None: passive for the CPU runtimes, as
    imported for torch) set the runtime's CPU threads; with torch the thread count is process-wide and the wait
    policy the one torch was imported with (omp_wait.py).
    """

    def __init__(
        self,
        net: DescriptorNet,
        device: str = "auto",
        max_side: int = 0,
        half: bool | None = None,
        warmup: bool = True,
        runtime: str = "torch",
        checkpoint: str | Path | None = None,
        num_threads: int = 0,
        omp_wait_policy: str | None = None,
    ) -> None:
        if max_side < 0:
            raise ValueError(f"max_side must be >= 0 (0 = no resizing), got {max_side}")
        self.device = resolve_device(device)
        self.half = self.device.type == "cuda" if half is None else half
        if self.half and self.device.type != "cuda":
            raise ValueError("half precision is only supported on CUDA devices")
        self.max_side = max_side
        self.net = net.to(self.device).eval()
        if self.device.type == "cuda":
            self.net = self.net.to(memory_format=torch.channels_last)
            if self.half:
                self.net = self.net.half()
        self.backend = open_backend(self.net, runtime, self.device, checkpoint, num_threads, omp_wait_policy)
        if warmup:
            self.compute_tensor(torch.zeros(1, 3, 64, 64))

    @classmethod
    def from_checkpoint(cls, folder: str | Path, device: str = "auto", **kwargs: object) -> DescriptorEngine:
        """Load a checkpoint folder (see model/checkpoint.py) and wrap it."""
        return cls(load_checkpoint(folder, device="cpu"), device=device, checkpoint=folder, **kwargs)

    @property
    def descriptor_dim(self) -> int:
        return self.net.descriptor_dim

    def inference_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) the network runs at for an input of this size."""
        return fit_within(height, width, self.max_side)

    @property
    def runtime(self) -> str:
        """The runtime the network runs in: torch, onnxruntime or openvino."""
        return self.backend.name

    @property
    def output_stride(self) -> int:
        """Pixels of the inference-size image per cell of the network's own (coarse) descriptor map."""
        return self.net.output_stride

    @torch.inference_mode()
    def compute_coarse_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """Float (N, 3, H, W) in [0, 1] -> the network's own (N, D, ceil(h / s), ceil(w / s)) float32 unit-norm map,
        s = ``output_stride``, (h, w) = ``inference_size(H, W)``: cell (i, j) is centred on inference pixel
        (s * i + (s - 1) / 2, s * j + (s - 1) / 2). Nothing is upsampled."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W), got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        x = images.to(self.device, non_blocking=True)
        x = x.half() if self.half else x.float()
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        run_h, run_w = self.inference_size(h, w)
        if (run_h, run_w) != (h, w):
            x = F.interpolate(x, size=(run_h, run_w), mode="bilinear", align_corners=False, antialias=True)
        return self.backend(x)

    @torch.inference_mode()
    def compute_tensor(self, images: torch.Tensor, output_size: tuple[int, int] | None = None) -> torch.Tensor:
        """Float (N, 3, H, W) in [0, 1] -> (N, D, h, w) float32 unit-norm descriptors on the engine's device, at
        ``output_size`` (h, w), by default the input's (H, W)."""
        h, w = images.shape[-2:]
        run_h, run_w = self.inference_size(h, w)
        norm = self.net.config.normalisation()
        desc = upsample_descriptors(self.compute_coarse_tensor(images), (run_h, run_w), self.net.output_stride, *norm)
        out_size = tuple(output_size) if output_size is not None else (h, w)
        if (run_h, run_w) != out_size:
            desc = F.interpolate(desc, size=out_size, mode="bilinear", align_corners=False)
            desc = normalize_descriptors(desc, *norm)
        return desc

    def map_stride(self, height: int, width: int) -> int:
        """Image pixels per cell of the network's own map of a (height, width) image, when every cell covers a whole
        square of them (the inference size divides the image, and the output stride the inference size); else 1."""
        run_h, run_w = self.inference_size(height, width)
        s = self.output_stride
        if height % run_h or width % run_w or height // run_h != width // run_w or run_h % s or run_w % s:
            return 1
        return s * (height // run_h)

    def compute_map(self, image: np.ndarray) -> tuple[np.ndarray, int]:
        """One uint8 image -> (float32 (h, w, D) unit descriptors, image pixels per map cell): the network's own map
        when its cells tile the image (``map_stride`` > 1; cell (i, j) centred on image pixel (k i + (k - 1) / 2, ...)
        for stride k), else :meth:`compute`'s image (stride 1). For readers that sample the map at sub-pixel
        positions (PointTracker): they get what the upsampled image would give, without building it."""
        tensor = image_to_tensor(image)[None]  # checks the image
        stride = self.map_stride(*tensor.shape[-2:])
        desc = self.compute_tensor(tensor) if stride == 1 else self.compute_coarse_tensor(tensor)
        return desc[0].permute(1, 2, 0).contiguous().cpu().numpy(), stride

    def compute(self, image: np.ndarray, output_size: tuple[int, int] | None = None) -> np.ndarray:
        """One uint8 RGB (H, W, 3) or mono (H, W) image -> float32 (H, W, D) unit-norm descriptors (or
        (h, w, D) at ``output_size``)."""
        return self.compute_batch([image], output_size)[0]

    def compute_batch(self, images: Sequence[np.ndarray], output_size: tuple[int, int] | None = None) -> np.ndarray:
        """Equal-size uint8 images -> float32 (N, H, W, D) (or (N, h, w, D) at ``output_size``)."""
        if len(images) == 0:
            raise ValueError("compute_batch needs at least one image")
        shapes = {np.asarray(im).shape[:2] for im in images}
        if len(shapes) != 1:
            raise ValueError(f"all images in a batch must have the same size, got {sorted(shapes)}")
        tensor = torch.stack([image_to_tensor(im) for im in images])
        return self.compute_tensor(tensor, output_size).permute(0, 2, 3, 1).cpu().numpy()
