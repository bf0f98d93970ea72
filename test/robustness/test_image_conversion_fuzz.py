"""Fuzz of the one image conversion module: any sensor_msgs/Image-like message (random encoding, size, step,
endianness and bytes) gives an array of the declared shape and dtype, or a ValueError, never anything else."""

from types import SimpleNamespace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dense_descriptors_ros.io.image_conversion import encoding_layout, image_to_numpy, numpy_to_image, to_rgb8

ENCODINGS = [
    *("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "mono16", "16UC1"),
    *("32FC1", "32FC3", "32FC16", "16FC1", "16FC3", "16FC32"),
]
ODD_ENCODINGS = [
    *("", "yuv422", "32FC0", "32FC", "32FC-1", "32FC99999", "RGB8", "bayer_rggb8", "64FC1", "8UC3"),
    *("16FC0", "16FC", "16FC-2", "16FC99999", "16fc4", "16UC3"),
]


@st.composite
def image_messages(draw):
    encoding = draw(st.sampled_from(ENCODINGS + ODD_ENCODINGS) | st.text(max_size=12))
    height = draw(st.integers(-2, 9))
    width = draw(st.integers(-2, 9))
    try:
        dtype, channels = encoding_layout(encoding)
        row_bytes = max(width, 0) * channels * dtype.itemsize
    except ValueError:
        row_bytes = max(width, 0) * 4
    step = draw(st.sampled_from([row_bytes, row_bytes + 3]) | st.integers(0, row_bytes + 16))
    size = max(height, 0) * step
    length = draw(st.sampled_from([size, max(size - 1, 0), size + 5]) | st.integers(0, size + 32))
    data = draw(st.binary(min_size=length, max_size=length))
    return SimpleNamespace(
        encoding=encoding, height=height, width=width, step=step, is_bigendian=draw(st.integers(0, 1)), data=data
    )


@settings(
    max_examples=400, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(msg=image_messages(), max_pixels=st.sampled_from([0, 0, 20, 1000]))
def test_any_message_gives_the_declared_array_or_a_value_error(msg, max_pixels):
    try:
        array = image_to_numpy(msg, max_pixels)
    except ValueError:
        return
    dtype, channels = encoding_layout(msg.encoding)
    expected = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    assert array.shape == expected and array.dtype == (np.float32 if dtype == np.float16 else dtype)
    assert len(msg.data) == msg.height * msg.step  # any other size is a ValueError
    assert not max_pixels or msg.height * msg.width <= max_pixels
    assert array.flags.c_contiguous and array.flags.writeable
    if dtype == np.uint8 and channels == 1:
        rows = np.frombuffer(msg.data, np.uint8)[: msg.height * msg.step].reshape(msg.height, msg.step)
        np.testing.assert_array_equal(array, rows[:, : msg.width])
    try:
        rgb = to_rgb8(array)
    except ValueError:
        return
    assert rgb.shape == (msg.height, msg.width, 3) and rgb.dtype == np.uint8


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(
    encoding=st.sampled_from(ENCODINGS),
    height=st.integers(1, 6),
    width=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_through_a_message_is_exact(encoding, height, width, seed):
    dtype, channels = encoding_layout(encoding)
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype.kind == "f":
        array = rng.normal(size=shape).astype(dtype)
    else:
        array = rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True, dtype=dtype)
    fields = SimpleNamespace(data=np.zeros(0, np.uint8))
    msg = numpy_to_image(array, encoding, msg=fields)
    np.testing.assert_array_equal(image_to_numpy(msg), array)
