"""DescriptorNet: RGB image -> image of unit-norm descriptors, one family configured by ``ModelConfig``.

Two architectures share the input handling (ImageNet normalisation, padding to the encoder stride, any H and W) and
the unit-norm output, so callers never repeat the preprocessing:

- ``encoder_decoder`` (papers/000 section 3.1, model/encoder_decoder.py): a ResNet or MobileNetV2 encoder and a
  decoder with skip connections, trained end to end; ``output_stride`` 1 gives a descriptor per pixel.
- ``fused`` (papers/004, model/fused.py): frozen ImageNet features projected to a few dimensions, fused with a small
  learned fine-grained branch. ``fine_dim`` 0 leaves the projected prior alone (the out-of-the-box model).

``forward`` returns (N, D, H / s, W / s) for output stride s (rounded up); ``upsample_descriptors`` brings such a
map to image size. A map of stride s samples pixel centre x at map coordinate (x + 0.5) / s - 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dense_descriptors_ros.model.backbones import BACKBONES, IMAGENET_MEAN, IMAGENET_STD, TAP_STRIDES
from dense_descriptors_ros.model.encoder_decoder import EncoderDecoder
from dense_descriptors_ros.model.fused import SemanticFineFusion

ARCHITECTURES = ("encoder_decoder", "fused")
OUTPUT_STRIDES = (1, 2, 4)
STRIDE = 32  # total downsampling of every encoder; inputs are padded to a multiple of it


@dataclass
class ModelConfig:
    backbone: str = field(
        default="mobilenet_v2",
        metadata={"help": "encoder network", "choices": BACKBONES},
    )
    descriptor_dim: int = field(default=16, metadata={"help": "D, channels of the descriptor image", "range": (1, 256)})
    pretrained: bool = field(
        default=True,
        metadata={"help": "start the encoder from ImageNet weights when the local torch hub cache has them"},
    )
    mean: tuple[float, float, float] = field(
        default=IMAGENET_MEAN, metadata={"help": "per-channel input mean (RGB, on [0, 1] pixels)"}
    )
    std: tuple[float, float, float] = field(
        default=IMAGENET_STD, metadata={"help": "per-channel input standard deviation (RGB)"}
    )
    channel_groups: tuple[int, ...] = field(
        default=(),
        metadata={"help": "sizes of descriptor channel groups (SAND G/L split); empty means one group"},
    )
    architecture: str = field(
        default="encoder_decoder",
        metadata={
            "help": "encoder_decoder: papers/000, trained end to end; fused: frozen ImageNet features + a small "
            "learned fine-grained branch (papers/004)",
            "choices": ARCHITECTURES,
        },
    )
    output_stride: int = field(
        default=1,
        metadata={
            "help": "descriptors every this many pixels (1: every pixel); coarser maps are sampled or upsampled",
            "choices": OUTPUT_STRIDES,
        },
    )
    semantic_taps: tuple[int, ...] = field(
        default=(8, 16), metadata={"help": "fused: encoder strides whose features form the semantic part"}
    )
    semantic_dim: int = field(
        default=16, metadata={"help": "fused: channels of the projected semantic part", "range": (1, 256)}
    )
    fine_dim: int = field(
        default=16,
        metadata={"help": "fused: channels of the learned fine part (0: semantic part only)", "range": (0, 256)},
    )
    fine_taps: tuple[int, ...] = field(
        default=(),
        metadata={"help": "fused: encoder strides the fine branch reads (empty: the one at the output stride)"},
    )
    fine_width: int = field(default=64, metadata={"help": "fused: channels inside the fine branch", "range": (8, 512)})
    fusion_weight: float = field(
        default=1.0,
        metadata={"help": "fused: weight of the fine part against the semantic part", "range": (0.0, 100.0)},
    )
    semantic_trainable: bool = field(
        default=False,
        metadata={
            "help": "fused: also train the ImageNet encoder, at optimizer.encoder_lr, its BatchNorm statistics kept "
            "(off: it stays the frozen prior)"
        },
    )

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone {self.backbone!r} is not one of {list(BACKBONES)}")
        if not 1 <= self.descriptor_dim <= 256:
            raise ValueError(f"descriptor_dim must be in [1, 256], got {self.descriptor_dim}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture {self.architecture!r} is not one of {list(ARCHITECTURES)}")
        if self.output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be one of {list(OUTPUT_STRIDES)}, got {self.output_stride}")
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        self.channel_groups = tuple(int(g) for g in self.channel_groups)
        self.semantic_taps = tuple(int(t) for t in self.semantic_taps)
        self.fine_taps = tuple(sorted({int(t) for t in self.fine_taps}))
        if self.channel_groups and sum(self.channel_groups) != self.descriptor_dim:
            raise ValueError(
                f"channel_groups {list(self.channel_groups)} must sum to descriptor_dim {self.descriptor_dim}"
            )
        if self.architecture == "fused":
            if self.semantic_dim + self.fine_dim != self.descriptor_dim:
                raise ValueError(
                    f"fused: descriptor_dim {self.descriptor_dim} must equal semantic_dim {self.semantic_dim} + "
                    f"fine_dim {self.fine_dim}"
                )
            if not self.semantic_taps or set(self.semantic_taps) - set(TAP_STRIDES):
                raise ValueError(f"semantic_taps {list(self.semantic_taps)} must be among {list(TAP_STRIDES)}")
            if set(self.fine_taps) - set(TAP_STRIDES):
                raise ValueError(f"fine_taps {list(self.fine_taps)} must be among {list(TAP_STRIDES)}")
            parts = (self.semantic_dim, self.fine_dim) if self.fine_dim else ()
            if self.channel_groups not in ((), parts):
                raise ValueError(
                    f"fused: channel_groups must be empty or {list(parts)}, got {list(self.channel_groups)}"
                )

    def normalisation(self) -> tuple[tuple[int, ...], tuple[float, ...] | None]:
        """(channel groups, group weights) of the output's normalisation (see ``normalize_descriptors``).

        A fused descriptor is its semantic and fine parts, each of unit length, weighted 1 : fusion_weight
        (papers/004 eq. 7); otherwise the SAND channel groups, or the whole vector.
        """
        if self.architecture == "fused" and self.fine_dim:
            return (self.semantic_dim, self.fine_dim), (1.0, self.fusion_weight)
        return self.channel_groups, None


class DescriptorNet(nn.Module):
    """RGB image in [0, 1], (N, 3, H, W), any H and W -> unit-norm descriptors (N, D, ceil(H / s), ceil(W / s))."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or ModelConfig()
        if c.architecture == "fused":
            self.body: nn.Module = SemanticFineFusion(
                c.backbone,
                c.semantic_taps,
                c.semantic_dim,
                c.fine_dim,
                c.fine_width,
                c.output_stride,
                c.semantic_trainable,
                c.pretrained,
                c.fine_taps,
            )
        else:
            self.body = EncoderDecoder(c.backbone, c.descriptor_dim, c.output_stride, c.pretrained)
        self.register_buffer("mean", torch.tensor(c.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(c.std).view(1, 3, 1, 1), persistent=False)

    @property
    def descriptor_dim(self) -> int:
        return self.config.descriptor_dim

    @property
    def output_stride(self) -> int:
        return self.config.output_stride

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters training updates (a frozen encoder's are left out)."""
        return [p for p in self.parameters() if p.requires_grad]

    def parameter_groups(self, lr: float, encoder_lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups of the trainable parameters: a fused network's trainable ImageNet encoder at
        ``encoder_lr``, the rest at ``lr``."""
        fused = self.config.architecture == "fused"
        encoder = [p for p in self.body.encoder.parameters() if p.requires_grad] if fused else []
        in_encoder = {id(p) for p in encoder}
        rest = [p for p in self.trainable_parameters() if id(p) not in in_encoder]
        return [{"params": rest, "lr": lr}] + ([{"params": encoder, "lr": encoder_lr}] if encoder else [])

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(rows, columns) of the descriptor map for an image of this size."""
        s = self.output_stride
        # Integer arithmetic, not math.ceil: under ONNX tracing the sizes stay symbolic (dynamic H and W).
        return (height + s - 1) // s, (width + s - 1) // s

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        """Normalised input, padded (replicate) to a multiple of the encoder stride."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"DescriptorNet expects (N, 3, H, W) RGB in [0, 1], got shape {tuple(image.shape)}")
        h, w = image.shape[-2:]
        x = (image - self.mean.to(image.dtype)) / self.std.to(image.dtype)
        # Always pad (possibly by zero) so an ONNX export keeps the padding dynamic in H and W.
        return F.pad(x, (0, (-w) % STRIDE, 0, (-h) % STRIDE), mode="replicate")

    @property
    def has_frozen_encoder(self) -> bool:
        """True when the encoder never trains, so its features of an image can be computed once and reused."""
        return self.config.architecture == "fused" and not self.config.semantic_trainable

    def encoder_features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The frozen encoder's feature maps of ``image`` (fused networks), to pass back into ``forward``."""
        if not self.has_frozen_encoder:
            raise ValueError("only a fused network with a frozen encoder has reusable encoder features")
        return self.body.encoder_features(self.prepare(image))

    def forward(self, image: torch.Tensor, encoder_features: list[torch.Tensor] | None = None) -> torch.Tensor:
        rows, cols = self.output_size(*image.shape[-2:])
        x = self.prepare(image)
        y = self.body(x) if encoder_features is None else self.body(x, encoder_features)
        return normalize_descriptors(y[..., :rows, :cols], *self.config.normalisation())


def normalize_descriptors(
    desc: torch.Tensor, channel_groups: tuple[int, ...] = (), group_weights: tuple[float, ...] | None = None
) -> torch.Tensor:
    """Per-pixel L2 normalisation over dim 1 (correct for any batch size); per group when channels are split.

    With groups, each group is normalised and scaled by w_g / sqrt(sum of w^2), so the whole vector still has unit
    norm; the default weights sqrt(group size) make every channel count alike (SAND's split).
    """
    if not channel_groups:
        return F.normalize(desc, dim=1)
    weights = group_weights or tuple(math.sqrt(g) for g in channel_groups)
    total = math.sqrt(sum(w * w for w in weights))
    parts = torch.split(desc, list(channel_groups), dim=1)
    return torch.cat([F.normalize(p, dim=1) * (w / total) for p, w in zip(parts, weights, strict=True)], dim=1)


def upsample_descriptors(
    desc: torch.Tensor,
    size: tuple[int, int],
    stride: int,
    channel_groups: tuple[int, ...] = (),
    group_weights: tuple[float, ...] | None = None,
) -> torch.Tensor:
    """A (N, D, h, w) descriptor map of ``stride`` brought to image size (H, W): bilinear with pixel centres aligned
    (the map covers the image padded to a multiple of the stride), renormalised. A no-op at stride 1."""
    if stride == 1 and tuple(desc.shape[-2:]) == tuple(size):
        return desc
    padded = (desc.shape[-2] * stride, desc.shape[-1] * stride)
    up = F.interpolate(desc, size=padded, mode="bilinear", align_corners=False)[..., : size[0], : size[1]]
    return normalize_descriptors(up, channel_groups, group_weights)
