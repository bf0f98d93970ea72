"""The one sensor_msgs/Image <-> numpy conversion module.

Works on any object with the Image fields (rclpy messages, rosbags-deserialised messages), so the same code
serves the nodes, the bag readers and the tests. Encodings: rgb8, bgr8, rgba8, bgra8, mono8, mono16, 16UC1,
32FC1, 32FC<D> for any D (descriptor images) and this package's 16FC<D>: D IEEE half floats per pixel, byte order
as ``is_bigendian`` says, step >= width * D * 2 (decoded to float32). ``step`` padding and ``is_bigendian`` are
honoured; data must be exactly height * step bytes. Colour images come back as RGB (or RGBA), whatever their
encoding; mono as (H, W).

cv_bridge is used when it imports (a ROS install); this code otherwise. Both give the same arrays (tested).
"""

from __future__ import annotations

import re
import sys
from array import array as ByteArray
from typing import Any

import cv2
import numpy as np

try:  # pragma: no cover - only on a machine with a ROS install
    from cv_bridge import CvBridge

    _BRIDGE: Any = CvBridge()
except ImportError:
    _BRIDGE = None

# encoding -> (numpy dtype, channels); 32FC<D> and 16FC<D> are parsed separately.
_FIXED = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
    "8UC1": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}
_FLOAT_MULTI = re.compile(r"^(32|16)FC(\d+)$")


class ImageError(ValueError):
    """A message that is not a usable image; ``cause`` names the kind of problem (nodes count bad input by it)."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause


def encoding_layout(encoding: str) -> tuple[np.dtype, int]:
    """(dtype in the message, channels) of a supported encoding; ValueError naming the supported ones otherwise."""
    if encoding in _FIXED:
        dtype, channels = _FIXED[encoding]
        return np.dtype(dtype), channels
    match = _FLOAT_MULTI.match(encoding)
    if match and int(match.group(2)) >= 1:
        return np.dtype(np.float32 if match.group(1) == "32" else np.float16), int(match.group(2))
    raise ImageError(
        "unsupported encoding",
        f"unsupported image encoding {encoding!r}; supported: {', '.join(_FIXED)}, 32FC<D>, 16FC<D>",
    )


def image_to_numpy(msg: Any, max_pixels: int = 0) -> np.ndarray:
    """sensor_msgs/Image -> numpy: RGB(A) for colour encodings, (H, W) for one channel, (H, W, D) float32 for
    32FC<D> and 16FC<D>.

    Raises ImageError (a ValueError) for unknown encodings, zero-size images, data of another size than
    height * step and, before anything is allocated, images of more than ``max_pixels`` pixels (0 = no limit).
    """
    encoding = str(msg.encoding)
    dtype, channels = encoding_layout(encoding)
    pixels = int(msg.height) * int(msg.width)
    if max_pixels and pixels > max_pixels:
        raise ImageError(
            "too large",
            f"{msg.width}x{msg.height} image ({pixels / 1e6:.1f} Mpx) is above the limit of {max_pixels / 1e6:.1f} Mpx "
            "(max_input_pixels); not decoded",
        )
    # cv_bridge knows no 16FC<D> (a convention of this package): those are always decoded here.
    bridge = _BRIDGE is not None and dtype != np.float16 and type(msg).__module__.startswith("sensor_msgs")
    if bridge:  # pragma: no cover - ROS install
        return _from_bridge(msg, encoding, channels)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageError("zero size", f"image has zero size: {width}x{height}")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageError(
            "step too small", f"step {step} is smaller than one row of {width} {encoding} pixels ({row_bytes} bytes)"
        )
    data = msg.data
    buffer = data if isinstance(data, (bytes, bytearray, memoryview, np.ndarray)) else bytes(data)
    raw = np.frombuffer(buffer, dtype=np.uint8)
    if raw.size < height * step:
        raise ImageError(
            "truncated data",
            f"image data truncated: {raw.size} bytes for {height} rows of step {step} ({height * step} expected)",
        )
    if raw.size > height * step:  # e.g. 32FC<D> data labelled 16FC<D>: never decode part of it as if it fitted
        raise ImageError(
            "data too long",
            f"image data too long: {raw.size} bytes for {height} rows of step {step} ({height * step} expected); "
            f"check encoding {encoding!r}, width and step",
        )
    rows = raw[: height * step].reshape(height, step)[:, :row_bytes]
    big_endian = bool(msg.is_bigendian)
    array = np.ascontiguousarray(rows).view(dtype.newbyteorder(">" if big_endian else "<"))
    array = array.reshape(height, width, channels).astype(np.float32 if dtype == np.float16 else dtype, copy=False)
    if channels == 1:
        array = array[..., 0]
    if encoding in ("bgr8", "bgra8"):
        array = array[..., [2, 1, 0, 3][:channels]]
    # A view into the message buffer is read-only; callers expect an array they own.
    return np.array(array, order="C", copy=not array.flags.writeable or not array.flags.c_contiguous)


def _from_bridge(msg: Any, encoding: str, channels: int) -> np.ndarray:  # pragma: no cover - ROS install
    if int(msg.height) <= 0 or int(msg.width) <= 0:
        raise ImageError("zero size", f"image has zero size: {msg.width}x{msg.height}")
    try:
        array = _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough")
    except Exception as exc:  # cv_bridge raises its own CvBridgeError / TypeError on bad data
        raise ImageError("not convertible", f"cv_bridge could not convert a {encoding} image: {exc}") from None
    if encoding in ("bgr8", "bgra8"):
        array = array[..., [2, 1, 0, 3][:channels]]
    return np.ascontiguousarray(array)


def numpy_to_image(array: np.ndarray, encoding: str, msg: Any | None = None) -> Any:
    """numpy -> sensor_msgs/Image with ``encoding``; RGB(A) input for colour encodings (swapped for bgr8/bgra8),
    float16 for 16FC<D>.

    ``msg`` is the message to fill (any object with the Image fields); a new ``sensor_msgs.msg.Image`` if None.
    The data is little-endian, tightly packed (step = width * channels * itemsize). A C-contiguous array of the
    right dtype is copied once, straight into the message's data.
    """
    dtype, channels = encoding_layout(encoding)
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] != channels:
        raise ValueError(f"encoding {encoding} needs {channels} channel(s), got array of shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"image has zero size: {array.shape[1]}x{array.shape[0]}")
    if array.dtype != dtype:
        raise ValueError(f"encoding {encoding} needs dtype {dtype}, got {array.dtype}")
    if encoding in ("bgr8", "bgra8"):
        array = array[..., [2, 1, 0, 3][:channels]]
    if msg is None:
        from sensor_msgs.msg import Image

        msg = Image()
    height, width = array.shape[:2]
    msg.height, msg.width, msg.encoding = height, width, encoding
    msg.is_bigendian = 0
    msg.step = width * channels * dtype.itemsize
    payload = np.ascontiguousarray(array, dtype=dtype.newbyteorder("<"))
    if sys.byteorder == "big":  # pragma: no cover - no big-endian CI
        payload = payload.byteswap()
    raw = payload.view(np.uint8).reshape(-1)
    if isinstance(msg.data, np.ndarray):
        msg.data = raw
    elif isinstance(msg.data, ByteArray):
        # rclpy's setter copies whatever it is given into a new array.array: fill the message's own one instead.
        msg.data = ByteArray("B")
        msg.data.frombytes(raw)
    else:
        msg.data = raw.tobytes()
    return msg


def compressed_to_numpy(msg: Any) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png) -> RGB uint8 (H, W, 3), or (H, W) for grey images."""
    buffer = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data, np.uint8)
    if buffer.size == 0:
        raise ValueError(f"compressed image ({msg.format!r}) has no data")
    decoded = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise ValueError(f"compressed image ({msg.format!r}, {buffer.size} bytes) could not be decoded as jpeg/png")
    if decoded.ndim == 3 and decoded.shape[2] == 3:
        return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    if decoded.ndim == 3 and decoded.shape[2] == 4:
        return cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGB)
    return decoded


def numpy_to_compressed(array: np.ndarray, fmt: str = "jpeg", msg: Any | None = None, quality: int = 90) -> Any:
    """RGB uint8 (H, W, 3) or grey (H, W) -> sensor_msgs/CompressedImage in ``fmt`` ('jpeg' or 'png')."""
    if fmt not in ("jpeg", "png"):
        raise ValueError(f"compressed format must be 'jpeg' or 'png', got {fmt!r}")
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or array.size == 0:
        raise ValueError(f"expected a non-empty uint8 RGB or grey image, got {array.dtype} {array.shape}")
    bgr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == "jpeg" else []
    ok, encoded = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", bgr, params)
    if not ok:
        raise ValueError(f"could not encode a {array.shape} image as {fmt}")
    if msg is None:
        from sensor_msgs.msg import CompressedImage

        msg = CompressedImage()
    msg.format = fmt
    msg.data = encoded.tobytes() if not isinstance(msg.data, np.ndarray) else encoded.ravel()
    return msg


def to_rgb8(array: np.ndarray) -> np.ndarray:
    """Any decoded camera image (mono8/16, RGB, RGBA) -> uint8 RGB (H, W, 3) for the network."""
    if array.ndim == 2:
        if array.dtype == np.uint16:
            array = (array >> 8).astype(np.uint8)
        elif array.dtype != np.uint8:
            raise ImageError("not a camera image", f"cannot use a {array.dtype} single-channel image as a camera image")
        return np.repeat(array[..., None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 4:
        return np.ascontiguousarray(array[..., :3])
    if array.ndim == 3 and array.shape[2] == 3 and array.dtype == np.uint8:
        return array
    raise ImageError(
        "not a camera image", f"cannot use an image of shape {array.shape} and dtype {array.dtype} as a camera image"
    )
