"""Pair augmentation with exactly transformed correspondences.

papers/000 section 3.3 flips one image of the pair across its horizontal and vertical axes. We add colour jitter,
scale crops (zoom into a random window, resized back to the full size) and, where object masks are known,
background randomisation (Dense Object Nets). Every geometric change is one 2x3 affine map per image, applied to
the pixels with ``cv2.warpAffine`` and to the points with the same matrix, so correspondences stay exact; points
that leave the image are marked invalid.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from dense_descriptors_ros.learning.sampling import PairSamples, inside_image


@dataclass
class AugmentConfig:
    hflip_probability: float = field(
        default=0.5, metadata={"help": "chance to flip image b left-right (papers/000)", "range": (0, 1)}
    )
    vflip_probability: float = field(
        default=0.5, metadata={"help": "chance to flip image b upside down (papers/000)", "range": (0, 1)}
    )
    crop_probability: float = field(default=0.0, metadata={"help": "chance of a scale crop per image", "range": (0, 1)})
    crop_min_scale: float = field(
        default=0.6, metadata={"help": "smallest crop side as a fraction of the image side", "range": (0.1, 1)}
    )
    brightness: float = field(default=0.0, metadata={"help": "colour jitter: brightness +-fraction", "range": (0, 1)})
    contrast: float = field(default=0.0, metadata={"help": "colour jitter: contrast +-fraction", "range": (0, 1)})
    saturation: float = field(default=0.0, metadata={"help": "colour jitter: saturation +-fraction", "range": (0, 1)})
    hue_degrees: float = field(default=0.0, metadata={"help": "colour jitter: hue shift +-degrees", "range": (0, 180)})
    background_probability: float = field(
        default=0.0,
        metadata={
            "help": "chance to paint a random texture over each image's pixels off the object mask (Dense Object "
            "Nets' background randomisation: descriptors that do not depend on the background); needs masks",
            "range": (0, 1),
        },
    )


def transform_points(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine map to (..., 2) points (x, y)."""
    return (points @ affine[:, :2].T + affine[:, 2]).astype(np.float32)


def flip_affine(height: int, width: int, horizontal: bool, vertical: bool) -> np.ndarray:
    """The affine map of a left-right and/or upside-down flip (pixel centres at integers)."""
    sx, tx = (-1.0, width - 1.0) if horizontal else (1.0, 0.0)
    sy, ty = (-1.0, height - 1.0) if vertical else (1.0, 0.0)
    return np.array([[sx, 0.0, tx], [0.0, sy, ty]])


def crop_affine(height: int, width: int, x0: float, y0: float, crop_w: float, crop_h: float) -> np.ndarray:
    """The affine map of cropping the window (x0, y0, crop_w, crop_h) and resizing it to (width, height)."""
    sx, sy = width / crop_w, height / crop_h
    # Pixel areas scale around their corners: a pixel centre x maps to (x + 0.5 - x0) * sx - 0.5.
    return np.array([[sx, 0.0, (0.5 - x0) * sx - 0.5], [0.0, sy, (0.5 - y0) * sy - 0.5]])


def compose(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The affine map ``second`` after ``first``."""
    return (np.vstack([second, [0, 0, 1]]) @ np.vstack([first, [0, 0, 1]]))[:2]


def random_texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A random uint8 RGB texture: smooth colour noise at a random scale, plus fine grain.

    Generated here rather than taken from the evaluation's backgrounds, so nothing of a test background leaks into
    training.
    """
    cells = int(rng.integers(2, 24))
    coarse = rng.uniform(0, 255, size=(cells, max(2, cells * width // height), 3)).astype(np.float32)
    texture = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    texture += rng.normal(0.0, rng.uniform(0, 40), size=texture.shape).astype(np.float32)
    return np.clip(texture, 0, 255).astype(np.uint8)


def randomise_background(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` with its pixels off ``mask`` replaced by a random texture (unchanged when the mask is everything)."""
    if mask.all():
        return image
    out = random_texture(*image.shape[:2], rng)
    out[mask] = image[mask]
    return out


def warp_image(image: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``image`` under the affine map (same output size); exact pixel copies for flips."""
    h, w = image.shape[:2]
    return cv2.warpAffine(image, affine, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


class PairAugmentation:
    """Random flips of image b, scale crops and colour jitter of both images, applied to a pair and its samples."""

    def __init__(self, config: AugmentConfig | None = None) -> None:
        self.config = config or AugmentConfig()

    def random_affine(self, height: int, width: int, rng: np.random.Generator, allow_flip: bool) -> np.ndarray:
        c = self.config
        affine = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        if rng.random() < c.crop_probability:
            scale = rng.uniform(c.crop_min_scale, 1.0)
            crop_w, crop_h = scale * width, scale * height
            x0, y0 = rng.uniform(0, width - crop_w), rng.uniform(0, height - crop_h)
            affine = crop_affine(height, width, x0, y0, crop_w, crop_h)
        if allow_flip:
            horizontal = rng.random() < c.hflip_probability
            vertical = rng.random() < c.vflip_probability
            affine = compose(flip_affine(height, width, horizontal, vertical), affine)
        return affine

    def jitter_colour(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        if not (c.brightness or c.contrast or c.saturation or c.hue_degrees):
            return image
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-c.hue_degrees, c.hue_degrees) / 2.0) % 180.0  # OpenCV hue: 0..180
        hsv[..., 1] *= 1.0 + rng.uniform(-c.saturation, c.saturation)
        rgb = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
        mean = rgb.mean()
        rgb = (rgb - mean) * (1.0 + rng.uniform(-c.contrast, c.contrast)) + mean
        rgb *= 1.0 + rng.uniform(-c.brightness, c.brightness)
        return np.clip(rgb, 0, 255).astype(np.uint8)

    def __call__(
        self,
        image_a: np.ndarray,
        image_b: np.ndarray,
        samples: PairSamples,
        rng: np.random.Generator,
        masks: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, PairSamples]:
        """Augmented images and samples; only image b is flipped (papers/000), both may be cropped and jittered.

        With the object ``masks`` of both images, their backgrounds may be replaced by random textures.
        """
        if masks is not None and self.config.background_probability:
            if rng.random() < self.config.background_probability:
                image_a = randomise_background(image_a, masks[0], rng)
            if rng.random() < self.config.background_probability:
                image_b = randomise_background(image_b, masks[1], rng)
        h, w = image_a.shape[:2]
        affine_a = self.random_affine(h, w, rng, allow_flip=False)
        affine_b = self.random_affine(h, w, rng, allow_flip=True)
        matches_a = transform_points(affine_a, samples.matches_a)
        matches_b = transform_points(affine_b, samples.matches_b)
        non_matches_b = transform_points(affine_b, samples.non_matches_b)
        match_valid = samples.match_valid & inside_image(matches_a, h, w) & inside_image(matches_b, h, w)
        non_match_valid = samples.non_match_valid & inside_image(non_matches_b, h, w) & match_valid[None, :, None]
        out = replace(
            samples,
            matches_a=matches_a,
            matches_b=matches_b,
            match_valid=match_valid,
            non_matches_b=non_matches_b,
            non_match_valid=non_match_valid,
        )
        image_a = self.jitter_colour(warp_image(image_a, affine_a), rng)
        image_b = self.jitter_colour(warp_image(image_b, affine_b), rng)
        return image_a, image_b, out
