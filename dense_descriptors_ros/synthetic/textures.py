"""Textures of every synthetic world, generated in code and deterministic from a numpy Generator.

One module serves all worlds: the GL object scenes (object textures and backgrounds, ``make_background``), the GL
stereo room (``room_surface_texture``), the ray-cast box room (``grey_shapes_texture``), the 2-D sprite video
(``smooth_texture``) and the moving plane (``FourierField``, also the oracle descriptors). Textures are uint8 RGB
(H, W, 3) unless said otherwise. Photographs come from matplotlib's bundled sample data (``grace_hopper.jpg``).

``smooth_texture`` and ``noise_texture`` are both multi-scale blurred colour noise, and ``grey_shapes_texture`` and
``blocks_texture`` both shapes over noise, but they draw different random numbers (and noise_texture works on a
coarser grid): merging them would change the frames the tests and benchmarks were measured on, so each keeps its
own exact recipe.
"""

from __future__ import annotations

import math
from functools import cache

import cv2
import numpy as np


@cache
def _photo() -> np.ndarray:
    """matplotlib's bundled grace_hopper.jpg as uint8 RGB (600 x 512)."""
    from matplotlib import cbook

    image = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError("matplotlib sample image grace_hopper.jpg could not be read")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def photo_crop(height: int, width: int, rng: np.random.Generator, min_fraction: float = 0.3) -> np.ndarray:
    """A random crop of the sample photograph, resized to (height, width), randomly flipped."""
    photo = _photo()
    ph, pw = photo.shape[:2]
    frac = rng.uniform(min_fraction, 1.0)
    ch = int(frac * min(ph, pw * height / width))
    cw = int(ch * width / height)
    y0, x0 = rng.integers(0, ph - ch + 1), rng.integers(0, pw - cw + 1)
    crop = photo[y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA))


def uniform_texture(
    height: int, width: int, colour: tuple[int, int, int], rng: np.random.Generator, noise: float = 3.0
) -> np.ndarray:
    """Near-uniform colour with faint low-frequency variation (a weakly textured, painted surface)."""
    variation = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), 12)
    variation *= noise / (variation.std() + 1e-6)
    return np.clip(np.asarray(colour, np.float32) + variation[..., None], 0, 255).astype(np.uint8)


def noise_texture(
    height: int,
    width: int,
    rng: np.random.Generator,
    tint: tuple[float, float, float] = (1, 1, 1),
    scales: tuple[float, ...] = (1.0, 2.5, 6.0),
) -> np.ndarray:
    """Strong multi-scale colour noise (blur scales ``scales`` in texels), optionally tinted (per-channel gain).

    Coarse scales are drawn on a coarser grid and upsampled, so large textures stay cheap.
    """
    texture = np.zeros((height, width, 3), np.float32)
    for sigma in scales:
        step = max(1.0, sigma / 1.5)
        noise = rng.standard_normal((math.ceil(height / step) + 1, math.ceil(width / step) + 1, 3), dtype=np.float32)
        layer = cv2.GaussianBlur(noise, (0, 0), sigma / step)
        layer *= 1.0 / (layer.std() + 1e-6)
        texture += cv2.resize(layer, (width, height), interpolation=cv2.INTER_LINEAR)
    low, high = float(texture.min()), float(texture.max())
    gain = np.asarray(tint, np.float32) * (255.0 / max(high - low, 1e-6))
    return cv2.convertScaleAbs((texture - low) * gain)  # clips to 0..255


def smooth_texture(
    height: int, width: int, rng: np.random.Generator, scales: tuple[float, ...] = (1.5, 4, 10)
) -> np.ndarray:
    """A random colour texture with structure at several scales (blur sigmas ``scales``, noise at full resolution)."""
    texture = np.zeros((height, width, 3), np.float32)
    for sigma in scales:
        noise = rng.standard_normal((height, width, 3)).astype(np.float32)
        layer = cv2.GaussianBlur(noise, (0, 0), sigma)
        texture += layer / (layer.std() + 1e-6)
    texture -= texture.min()
    return (255 * texture / max(float(texture.max()), 1e-6)).astype(np.uint8)


def blocks_texture(height: int, width: int, rng: np.random.Generator, count: int = 40) -> np.ndarray:
    """Random coloured rectangles and discs over a mid-grey noise base (posters, boxes, tiles)."""
    image = noise_texture(height, width, rng, scales=(2.0, 8.0)).astype(np.float32) * 0.4 + 70
    image = image.astype(np.uint8)
    size = min(height, width)
    for _ in range(count):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(size // 40 + 2, size // 6 + 3))
        if rng.random() < 0.7:
            w, h = int(r * rng.uniform(0.5, 2.0)), int(r * rng.uniform(0.5, 2.0))
            cv2.rectangle(image, (x - w, y - h), (x + w, y + h), colour, -1)
        else:
            cv2.circle(image, (x, y), r, colour, -1)
    return image


def grey_shapes_texture(rng: np.random.Generator, size: int, shapes: int) -> np.ndarray:
    """Grey rectangles and anti-aliased discs over upsampled noise, slightly blurred: uint8 gray (size, size)."""
    noise = cv2.resize(
        rng.uniform(0, 255, (size // 32, size // 32)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC
    )
    tex = np.clip(0.5 * noise + 64, 0, 255).astype(np.uint8)
    for _ in range(shapes):
        colour = int(rng.integers(0, 256))
        x, y = (int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(size // 120, size // 25))
        if rng.random() < 0.6:
            cv2.rectangle(tex, (x - r, y - r // 2), (x + r, y + r), colour, -1)
        else:
            cv2.circle(tex, (x, y), r, colour, -1, lineType=cv2.LINE_AA)
    return cv2.GaussianBlur(tex, (0, 0), 1.2)


def stripes_texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Coloured stripes of varying width and angle with fine noise on top."""
    angle = rng.uniform(0, math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    coord = xs * math.cos(angle) + ys * math.sin(angle)
    period = rng.uniform(0.04, 0.12) * max(height, width)
    band = np.floor(coord / period).astype(np.int64)
    palette = rng.integers(30, 230, (int(band.max() - band.min()) + 1, 3))
    image = palette[band - band.min()].astype(np.float32)
    image += noise_texture(height, width, rng, scales=(1.0, 3.0)).astype(np.float32) * 0.25 - 32
    return np.clip(image, 0, 255).astype(np.uint8)


def checker_texture(squares: int, square_px: int, colours=((30, 30, 30), (225, 225, 225))) -> np.ndarray:
    """A ``squares x squares`` checkerboard with ``square_px`` texels per square (corners at exact texel edges)."""
    idx = (np.arange(squares * square_px) // square_px) % 2
    board = (idx[:, None] + idx[None, :]) % 2
    return np.asarray(colours, np.uint8)[board]


def room_surface_texture(
    width_m: float, height_m: float, texels_per_metre: int, rng: np.random.Generator, posters: int
) -> np.ndarray:
    """A unique texture for a large surface: noise base, coloured blocks and ``posters`` photo crops."""
    w = max(32, int(width_m * texels_per_metre))
    h = max(32, int(height_m * texels_per_metre))
    base = noise_texture(h, w, rng, scales=(2.0, 6.0, 20.0)).astype(np.float32)
    blocks = blocks_texture(h, w, rng, count=int(12 * width_m * height_m) + 10).astype(np.float32)
    texture = (0.45 * base + 0.55 * blocks).astype(np.uint8)
    for _ in range(posters):
        ph, pw = int(rng.integers(h // 6, h // 2 + 1)), int(rng.integers(w // 12, w // 4 + 1))
        y, x = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        texture[y : y + ph, x : x + pw] = photo_crop(ph, pw, rng)
    return texture


BACKGROUND_NAMES = ("photo", "noise", "blocks", "stripes", "gradient")


def make_background(name: str, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A background image (uint8 RGB, height x width), deterministic from ``seed``: one of BACKGROUND_NAMES."""
    rng = np.random.default_rng([seed, 1000 + BACKGROUND_NAMES.index(name)] if name in BACKGROUND_NAMES else seed)
    if name == "photo":
        return photo_crop(height, width, rng)
    if name == "noise":
        return noise_texture(height, width, rng, scales=(1.5, 4.0, 12.0))
    if name == "blocks":
        return blocks_texture(height, width, rng)
    if name == "stripes":
        return stripes_texture(height, width, rng)
    if name == "gradient":
        # Nearly featureless: a smooth two-colour gradient with faint noise (the easiest background).
        c0, c1 = rng.integers(40, 220, 3).astype(np.float32), rng.integers(40, 220, 3).astype(np.float32)
        ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
        variation = uniform_texture(height, width, (128, 128, 128), rng, noise=2.0).astype(np.float32) - 128
        return np.clip(c0 + (c1 - c0) * ramp + variation, 0, 255).astype(np.uint8)
    raise ValueError(f"unknown background {name!r}; expected one of {list(BACKGROUND_NAMES)}")


class FourierField:
    """A fixed random smooth vector field over the plane (or space): cos(W u + b), wavelengths log-uniform in a band."""

    def __init__(self, dim: int, min_wavelength: float, max_wavelength: float, seed: int, space_dim: int = 2) -> None:
        rng = np.random.default_rng(seed)
        wavelengths = np.exp(rng.uniform(math.log(min_wavelength), math.log(max_wavelength), dim))
        directions = rng.normal(size=(dim, space_dim))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        self.frequencies = (2.0 * math.pi / wavelengths)[:, None] * directions
        self.phases = rng.uniform(0.0, 2.0 * math.pi, dim)

    def __call__(self, coords: np.ndarray) -> np.ndarray:
        """(..., space_dim) coordinates -> (..., dim) values in [-1, 1]."""
        return np.cos(coords @ self.frequencies.T + self.phases)
