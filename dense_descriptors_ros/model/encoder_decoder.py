"""The papers/000 body: a ResNet or MobileNetV2 encoder and a decoder of transposed convolutions with skips.

The decoder upsamples from stride 32 through the skips at strides 16, 8, 4 (and 2) and ends at the configured
output stride: 1 is the papers/000 network (a last transposed convolution back to full resolution, the 3x3 head on
every pixel); 4 stops after the stride-4 skip, which removes most of the network's compute (the full-resolution
tail is more than half of it), and callers sample or upsample the coarse map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dense_descriptors_ros.model.backbones import TappedEncoder, load_backbone


class _UpBlock(nn.Module):
    """2x transposed-convolution upsampling, concatenation with the skip feature, then a 3x3 convolution."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2)
        self.fuse = nn.Sequential(
            nn.Conv2d(out_ch + skip_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.up(x), skip], dim=1))


class EncoderDecoder(nn.Module):
    """Normalised, stride-padded RGB (N, 3, H, W) -> raw descriptors (N, D, H / s, W / s), s = output_stride."""

    DECODER_CHANNELS = (256, 128, 64, 64)

    def __init__(self, backbone: str, descriptor_dim: int, output_stride: int, pretrained: bool) -> None:
        super().__init__()
        if output_stride not in (1, 2, 4):
            raise ValueError(f"the encoder-decoder ends at output stride 1, 2 or 4, got {output_stride}")
        self.output_stride = output_stride
        self.encoder = TappedEncoder(backbone, load_backbone(backbone, pretrained))
        enc = self.encoder.channels
        dec = self.DECODER_CHANNELS
        self.bottleneck = nn.Conv2d(enc[4], dec[0], 1)
        self.up16 = _UpBlock(dec[0], enc[3], dec[0])
        self.up8 = _UpBlock(dec[0], enc[2], dec[1])
        self.up4 = _UpBlock(dec[1], enc[1], dec[2])
        if output_stride <= 2:
            self.up2 = _UpBlock(dec[2], enc[0], dec[3])
        if output_stride == 1:
            self.up1 = nn.ConvTranspose2d(dec[3], dec[3], kernel_size=2, stride=2)
        head_in = dec[2] if output_stride == 4 else dec[3]
        self.head = nn.Conv2d(head_in, descriptor_dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s2, s4, s8, s16, s32 = self.encoder(x)
        y = self.up4(self.up8(self.up16(self.bottleneck(s32), s16), s8), s4)
        if self.output_stride <= 2:
            y = self.up2(y, s2)
        if self.output_stride == 1:
            y = F.relu(self.up1(y))
        return self.head(y)
