"""The SLAM's feature interface: one class per feature type, each with its own distance norm and thresholds.

A feature type turns an image (plus, for learned features, its dense descriptor image) into keypoints and
descriptors, measures descriptor distances, pools a global descriptor for loop-closure retrieval, and carries the
matching thresholds that only make sense for its norm (pyslam's ``FeatureInfo`` idea; S-PTAM's
``MatchingDistance``). The rest of the SLAM never looks inside a descriptor.

* :class:`LearnedDenseFeatures`: keypoints from a corner detector (GFTT/FAST) or from the descriptor
  distinctiveness (features/keypoints.py) with non-maximum suppression and a grid spread; descriptors are
  bilinearly sampled from the dense (H, W, D) unit-norm descriptor image and re-normalised (no patch aggregation,
  papers/003 section 5.4). L2 distance on unit vectors, so thresholds live in [0, 2].
* :class:`OrbFeatures`: the baseline, OpenCV ORB descriptors (Hamming distance, 256 bits) on the same keypoints.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import cv2
import numpy as np
import torch

from dense_descriptors_ros.features.distance import descriptor_distance
from dense_descriptors_ros.features.keypoints import distinctiveness_map, grid_cells, grid_spread
from dense_descriptors_ros.features.sampling import sample_descriptors

KEYPOINT_DETECTORS = ("gftt", "fast", "saliency")
SALIENCY_RADIUS = 2  # pixels between a saliency keypoint and the neighbours it must differ from


@dataclass
class FeatureConfig:
    """Keypoint selection and descriptor matching thresholds (each feature type has its own defaults)."""

    detector: str = field(
        default="gftt",
        metadata={
            "help": "keypoint detector: gftt (Shi-Tomasi), fast, or saliency (learned only)",
            "choices": KEYPOINT_DETECTORS,
        },
    )
    max_keypoints: int = field(default=800, metadata={"help": "keypoints per image", "range": (10, 20000)})
    min_distance_px: float = field(
        default=7.0, metadata={"help": "minimum distance between keypoints (NMS radius)", "range": (1.0, 100.0)}
    )
    quality_level: float = field(
        default=0.005, metadata={"help": "GFTT quality level / saliency threshold (relative)", "range": (1e-5, 1.0)}
    )
    grid_cells: int = field(
        default=8, metadata={"help": "grid spread: cells per image side, keypoints shared evenly", "range": (1, 64)}
    )
    subpixel: bool = field(default=True, metadata={"help": "refine corner keypoints to sub-pixel accuracy"})
    max_distance: float = field(
        default=-1.0,
        metadata={
            "help": "largest accepted descriptor distance (-1: the feature type's default)",
            "range": (-1.0, 1000.0),
        },
    )
    ratio: float = field(default=0.9, metadata={"help": "best/second-best distance ratio test", "range": (0.1, 1.0)})


@dataclass
class FrameFeatures:
    """Keypoints (N, 2) float32 (x=column, y=row) and their descriptors (N, D) (dtype set by the feature type)."""

    keypoints: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return len(self.keypoints)

    def subset(self, index: np.ndarray) -> FrameFeatures:
        return FrameFeatures(self.keypoints[index], self.descriptors[index])


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) or gray (H, W) / (H, W, 1) -> uint8 gray (H, W)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if image.ndim == 2:
        return image
    raise ValueError(f"expected an RGB (H, W, 3) or gray (H, W) image, got shape {image.shape}")


def detect_corners(gray: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """GFTT or FAST corners spread over a grid -> (N, 2) float32 keypoints."""
    if config.detector == "gftt":
        corners = cv2.goodFeaturesToTrack(
            gray,
            maxCorners=config.max_keypoints * 2,
            qualityLevel=config.quality_level,
            minDistance=config.min_distance_px,
            blockSize=5,
        )
        if corners is None:
            return np.zeros((0, 2), np.float32)
        points = corners.reshape(-1, 2).astype(np.float32)
        # goodFeaturesToTrack returns corners by decreasing quality: use the order as the score.
        scores = -np.arange(len(points), dtype=np.float64)
    elif config.detector == "fast":
        fast = cv2.FastFeatureDetector_create(threshold=12, nonmaxSuppression=True)
        kps = fast.detect(gray)
        if not kps:
            return np.zeros((0, 2), np.float32)
        points = np.array([k.pt for k in kps], np.float32)
        scores = np.array([k.response for k in kps], np.float64)
    else:
        raise ValueError(f"detector {config.detector!r} is not a corner detector; use one of ('gftt', 'fast')")
    points = points[grid_spread(scores, grid_cells(points, gray.shape, config.grid_cells), config.max_keypoints)]
    if config.subpixel and len(points):
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 10, 0.01)
        points = cv2.cornerSubPix(gray, points.reshape(-1, 1, 2).copy(), (3, 3), (-1, -1), criteria).reshape(-1, 2)
    return points.astype(np.float32)


def detect_salient(descriptor_image: np.ndarray, config: FeatureConfig, border: int = 4) -> np.ndarray:
    """Keypoints at local maxima of descriptor distinctiveness (NMS over ``min_distance_px``), spread over a grid."""
    chw = torch.from_numpy(np.ascontiguousarray(descriptor_image)).permute(2, 0, 1)
    score = distinctiveness_map(chw, SALIENCY_RADIUS).numpy()
    size = 2 * round(config.min_distance_px) + 1
    peaks = (score >= cv2.dilate(score, np.ones((size, size), np.uint8))) & (
        score > config.quality_level * float(score.max())
    )
    peaks[:border], peaks[-border:], peaks[:, :border], peaks[:, -border:] = False, False, False, False
    ys, xs = np.nonzero(peaks)
    points = np.stack([xs, ys], axis=1).astype(np.float32)
    cells = grid_cells(points, score.shape, config.grid_cells)
    return points[grid_spread(score[ys, xs].astype(np.float64), cells, config.max_keypoints)]


class FeatureType(ABC):
    """One feature type: extraction, its distance norm and its matching thresholds."""

    name: str
    norm: str
    default_max_distance: float
    # Whether extraction reads the frame's dense (H, W, D) descriptor image, so a descriptor network has to run.
    needs_descriptor_image: ClassVar[bool] = False

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        if self.config.detector not in self.supported_detectors():
            raise ValueError(
                f"{type(self).__name__} does not support detector {self.config.detector!r}; "
                f"use one of {self.supported_detectors()}"
            )
        self.max_distance = self.config.max_distance if self.config.max_distance >= 0 else self.default_max_distance
        self.ratio = self.config.ratio

    @staticmethod
    def supported_detectors() -> tuple[str, ...]:
        return ("gftt", "fast")

    @abstractmethod
    def extract(self, gray: np.ndarray, descriptor_image: np.ndarray | None = None) -> FrameFeatures:
        """Keypoints and descriptors of one uint8 gray image."""

    @abstractmethod
    def distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(Na, D), (Nb, D) descriptors -> (Na, Nb) float32 distances in this type's norm."""

    @abstractmethod
    def paired_distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(N, ..., D) and (N, ..., D) descriptors -> (N, ...) float32 distances, element by element."""

    @abstractmethod
    def global_descriptor(
        self, gray: np.ndarray, descriptor_image: np.ndarray | None, features: FrameFeatures
    ) -> np.ndarray:
        """A unit-norm float32 vector summarising the image, compared by dot product for loop retrieval."""

    @property
    @abstractmethod
    def descriptor_dtype(self) -> np.dtype:
        """dtype of this type's descriptors."""


class LearnedDenseFeatures(FeatureType):
    """Learned dense descriptors (H, W, D unit L2) sampled at corner or saliency keypoints; L2 distance in [0, 2]."""

    name = "learned"
    norm = "L2"
    # Calibrated with a scene.yaml model on a rendered room that is not the benchmark's (0.6-1.0 x ratio 0.8-0.9):
    # 0.6 gave the lowest ATE there.
    default_max_distance = 0.6
    needs_descriptor_image = True

    @staticmethod
    def supported_detectors() -> tuple[str, ...]:
        return KEYPOINT_DETECTORS

    @property
    def descriptor_dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def extract(self, gray: np.ndarray, descriptor_image: np.ndarray | None = None) -> FrameFeatures:
        if descriptor_image is None:
            raise ValueError("LearnedDenseFeatures needs the dense descriptor image (H, W, D) of the frame")
        descriptor_image = np.asarray(descriptor_image, dtype=np.float32)
        if descriptor_image.ndim != 3 or descriptor_image.shape[:2] != gray.shape[:2]:
            raise ValueError(
                f"descriptor image must be (H, W, D) with H, W = {gray.shape[:2]}, got {descriptor_image.shape}"
            )
        if self.config.detector == "saliency":
            keypoints = detect_salient(descriptor_image, self.config)
        else:
            keypoints = detect_corners(gray, self.config)
        return FrameFeatures(keypoints, sample_descriptors(descriptor_image, keypoints))

    def distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return descriptor_distance(a @ b.T).astype(np.float32)

    def paired_distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return descriptor_distance(np.einsum("...d,...d->...", a, b)).astype(np.float32)

    def global_descriptor(
        self, gray: np.ndarray, descriptor_image: np.ndarray | None, features: FrameFeatures
    ) -> np.ndarray:
        """Mean descriptor of each cell of a 2x2 grid, each normalised, concatenated and normalised."""
        if descriptor_image is None:
            raise ValueError("LearnedDenseFeatures.global_descriptor needs the dense descriptor image")
        return pooled_global_descriptor(descriptor_image)


def pooled_global_descriptor(descriptor_image: np.ndarray, grid: int = 2) -> np.ndarray:
    """VLAD-like pooling without a vocabulary: 2x2 grid of mean descriptors, each L2-normalised, concatenated."""
    h, w, _ = descriptor_image.shape
    parts = []
    for i in range(grid):
        for j in range(grid):
            cell = descriptor_image[i * h // grid : (i + 1) * h // grid, j * w // grid : (j + 1) * w // grid]
            mean = cell.reshape(-1, cell.shape[-1]).mean(axis=0)
            parts.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
    vec = np.concatenate(parts).astype(np.float32)
    return vec / max(float(np.linalg.norm(vec)), 1e-12)


class OrbFeatures(FeatureType):
    """OpenCV ORB (rBRIEF, 256 bits) computed at the same corner keypoints; Hamming distance in [0, 256]."""

    name = "orb"
    norm = "Hamming"
    default_max_distance = 64.0

    def __init__(self, config: FeatureConfig | None = None) -> None:
        super().__init__(config)
        self._orb = cv2.ORB_create(nfeatures=self.config.max_keypoints, edgeThreshold=15, patchSize=15)

    @property
    def descriptor_dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    def extract(self, gray: np.ndarray, descriptor_image: np.ndarray | None = None) -> FrameFeatures:
        points = detect_corners(gray, self.config)
        # KeyPoint.convert builds and reads the keypoints in C++ (a Python loop over them cost ~1 ms per image).
        kps, desc = self._orb.compute(gray, cv2.KeyPoint.convert(points, 15.0))
        if desc is None or not kps:
            return FrameFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
        return FrameFeatures(cv2.KeyPoint.convert(kps).reshape(-1, 2), desc)

    def distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        bits_a = np.unpackbits(a, axis=1).astype(np.float32)
        bits_b = np.unpackbits(b, axis=1).astype(np.float32)
        same = bits_a @ bits_b.T
        return bits_a.sum(1)[:, None] + bits_b.sum(1)[None, :] - 2.0 * same

    def paired_distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # Popcount of 64-bit words: four per 256-bit descriptor instead of 32 byte lookups.
        words = np.bitwise_xor(a, b).view(np.uint64)
        return np.bitwise_count(words).sum(axis=-1, dtype=np.int32).astype(np.float32)

    def global_descriptor(
        self, gray: np.ndarray, descriptor_image: np.ndarray | None, features: FrameFeatures
    ) -> np.ndarray:
        """A 16x12 thumbnail, zero mean and unit norm (what a binary feature pipeline has without a vocabulary)."""
        thumb = cv2.resize(gray, (16, 12), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
        thumb -= thumb.mean()
        return thumb / max(float(np.linalg.norm(thumb)), 1e-12)


def feature_class(name: str) -> type[FeatureType]:
    """'learned' -> LearnedDenseFeatures, 'orb' -> OrbFeatures."""
    types = {"learned": LearnedDenseFeatures, "orb": OrbFeatures}
    if name not in types:
        raise ValueError(f"unknown feature type {name!r}; expected one of {sorted(types)}")
    return types[name]


def make_features(name: str, config: FeatureConfig | None = None) -> FeatureType:
    """The feature type called ``name`` with ``config``."""
    return feature_class(name)(config)
