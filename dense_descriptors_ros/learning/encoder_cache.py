"""Frozen-encoder features of training images, computed once and reused (fused networks, papers/004).

The semantic part of a fused network never trains, so an image's encoder features never change: a training run
over a few hundred frames computes them once per distinct image. Images are keyed by their bytes, so a frame and
its flipped copy are two entries, and augmentations that change every pixel (colour jitter, crops, random
backgrounds) simply miss. Entries are stored in float32 on the CPU (exactly what the encoder gives); the least
recently used go first when the cache is over its size.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch

from dense_descriptors_ros.model.network import DescriptorNet


class EncoderFeatureCache:
    """LRU cache of ``net.encoder_features`` per image, at most ``max_mb`` megabytes."""

    def __init__(self, max_mb: float) -> None:
        self.max_bytes = int(max_mb * 2**20)
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[bytes, list[torch.Tensor]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _key(image: torch.Tensor) -> bytes:
        data = image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
        return hashlib.blake2b(data, digest_size=16).digest() + str(tuple(image.shape)).encode()

    def _store(self, key: bytes, taps: list[torch.Tensor]) -> list[torch.Tensor]:
        stored = [t.detach().to("cpu", torch.float32) for t in taps]
        self._entries[key] = stored
        self._bytes += sum(t.numel() * t.element_size() for t in stored)
        while self._bytes > self.max_bytes and self._entries:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= sum(t.numel() * t.element_size() for t in dropped)
        return stored

    @torch.no_grad()
    def features(self, net: DescriptorNet, images: torch.Tensor) -> list[torch.Tensor]:
        """``net.encoder_features(images)`` for a batch (N, 3, H, W), from the cache where it can."""
        keys = [self._key(image) for image in images]
        found: dict[int, list[torch.Tensor]] = {}
        for i, key in enumerate(keys):
            if key in self._entries:
                self._entries.move_to_end(key)
                found[i] = self._entries[key]
        missing = [i for i in range(len(keys)) if i not in found]
        self.hits += len(found)
        self.misses += len(missing)
        if missing:
            computed = net.encoder_features(images[missing])
            for row, i in enumerate(missing):
                found[i] = self._store(keys[i], [tap[row] for tap in computed])
        return [
            torch.stack([found[i][k].to(images.device, torch.float32) for i in range(len(keys))])
            for k in range(len(found[0]))
        ]
