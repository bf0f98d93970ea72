"""Semantic + fine-grained fusion (papers/004, SFC): frozen ImageNet features next to a small learned branch.

(a) Semantic part: feature maps of a frozen ImageNet encoder (MobileNetV2 by default, BatchNorm in eval mode) at a
    few strides, each L2-normalised, bilinearly resampled to the output grid, concatenated and projected to
    ``semantic_dim`` channels by a fixed linear map (a PCA basis stored in the weights, see semantic_projection.py).
    It is the generic prior that fine-tuning used to destroy: it is never trained unless asked.
(b) Fine part: a few convolutions on the image plus the encoder's map at the output stride (or at ``fine_taps``, which
    can add deeper maps as context), trained with the pixelwise contrastive loss on flow labels (or labels from depth
    and poses, learning/geometry_labels.py); it adds what the prior lacks on the user's object.
The two are L2-normalised separately and fused as cat(a, w b) / sqrt(1 + w^2) (papers/004 eq. 7; DescriptorNet's
normalisation does it), so the result has unit norm and ``fusion_weight`` w says how much the learned part counts.
With ``fine_dim`` 0 the descriptor is the projected prior alone: the out-of-the-box model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dense_descriptors_ros.model.backbones import TappedEncoder, load_backbone, tap_channels

STEM_CHANNELS = 32


def _conv(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1), nn.ReLU(inplace=True))


class SemanticFineFusion(nn.Module):
    """Normalised, stride-padded RGB (N, 3, H, W) -> (N, Ds + Df, H / s, W / s): the unit semantic part, then the
    raw fine part."""

    def __init__(
        self,
        backbone: str,
        semantic_taps: tuple[int, ...],
        semantic_dim: int,
        fine_dim: int,
        fine_width: int,
        output_stride: int,
        semantic_trainable: bool,
        pretrained: bool,
        fine_taps: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        if output_stride not in (1, 2, 4):
            raise ValueError(f"the fused network ends at output stride 1, 2 or 4, got {output_stride}")
        self.semantic_taps = tuple(sorted(semantic_taps))
        self.semantic_dim, self.fine_dim = semantic_dim, fine_dim
        self.output_stride = output_stride
        self.semantic_trainable = semantic_trainable
        # The encoder has no stride-1 map: by default a fine branch reads the tap at its stride (stride 2 for 1).
        self.fine_taps = tuple(sorted(fine_taps or (max(2, output_stride),))) if fine_dim else ()
        strides = tuple(sorted(set(self.semantic_taps) | set(self.fine_taps)))
        self.encoder = TappedEncoder(backbone, load_backbone(backbone, pretrained), strides)
        self._semantic_index = [strides.index(s) for s in self.semantic_taps]
        self._fine_index = [strides.index(s) for s in self.fine_taps]
        if not semantic_trainable:
            self.encoder.requires_grad_(False)
        raw_dim = sum(tap_channels(backbone, s) for s in self.semantic_taps)
        if not 1 <= semantic_dim <= raw_dim:
            raise ValueError(f"semantic_dim must be in [1, {raw_dim}] for taps {list(self.semantic_taps)}")
        # Until a PCA basis is fitted (semantic_projection.py), a fixed random orthonormal map keeps the output usable.
        generator = torch.Generator().manual_seed(0)
        basis = torch.linalg.qr(torch.randn(raw_dim, semantic_dim, generator=generator))[0].T
        self.register_buffer("projection_mean", torch.zeros(raw_dim))
        self.register_buffer("projection", basis.contiguous())
        if fine_dim:
            halvings = int(math.log2(output_stride))
            stem = [_conv(3, STEM_CHANNELS, 2 if halvings >= 1 else 1)]
            stem.append(_conv(STEM_CHANNELS, fine_width, 2 if halvings >= 2 else 1))
            self.fine_stem = nn.Sequential(*stem)
            self.fine_head = nn.Sequential(
                _conv(fine_width + sum(tap_channels(backbone, s) for s in self.fine_taps), fine_width),
                _conv(fine_width, fine_width),
                nn.Conv2d(fine_width, fine_dim, 1),
            )

    def train(self, mode: bool = True) -> SemanticFineFusion:
        """Train mode for the learned parts only: the encoder keeps ImageNet's BatchNorm statistics (eval mode), also
        when it trains: batches of two frames of one video would overwrite them with their own."""
        super().train(mode)
        self.encoder.eval()
        return self

    def encoder_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's maps at its taps (computed without gradients when the encoder is frozen)."""
        with torch.set_grad_enabled(self.semantic_trainable and torch.is_grad_enabled()):
            return self.encoder(x)

    def semantic_features(self, taps: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """Unprojected semantic features (N, sum of tap channels, *size): each tap normalised and resampled."""
        parts = [
            F.normalize(F.interpolate(taps[i], size=size, mode="bilinear", align_corners=False), dim=1)
            for i in self._semantic_index
        ]
        return torch.cat(parts, dim=1)

    def forward(self, x: torch.Tensor, taps: list[torch.Tensor] | None = None) -> torch.Tensor:
        taps = self.encoder_features(x) if taps is None else taps
        size = (x.shape[-2] // self.output_stride, x.shape[-1] // self.output_stride)
        raw = self.semantic_features(taps, size) - self.projection_mean.view(1, -1, 1, 1)
        semantic = F.normalize(torch.einsum("nchw,dc->ndhw", raw, self.projection), dim=1)
        if not self.fine_dim:
            return semantic
        context = [taps[i] for i in self._fine_index]
        context = [t if t.shape[-2:] == size else F.interpolate(t, size=size, mode="bilinear") for t in context]
        fine = self.fine_head(torch.cat([self.fine_stem(x), *context], dim=1))
        return torch.cat([semantic, fine], dim=1)  # DescriptorNet normalises and weights the two parts
