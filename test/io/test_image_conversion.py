"""sensor_msgs/Image <-> numpy for every supported encoding (16FC<D> included), step padding, endianness, wrong
data sizes, CompressedImage."""

import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from dense_descriptors_ros.io.image_conversion import (
    compressed_to_numpy,
    image_to_numpy,
    numpy_to_compressed,
    numpy_to_image,
    to_rgb8,
)

rng = np.random.default_rng(0)
CASES = {
    "rgb8": rng.integers(0, 256, (5, 7, 3), dtype=np.uint8),
    "bgr8": rng.integers(0, 256, (5, 7, 3), dtype=np.uint8),
    "rgba8": rng.integers(0, 256, (5, 7, 4), dtype=np.uint8),
    "bgra8": rng.integers(0, 256, (5, 7, 4), dtype=np.uint8),
    "mono8": rng.integers(0, 256, (5, 7), dtype=np.uint8),
    "mono16": rng.integers(0, 65536, (5, 7), dtype=np.uint16),
    "16UC1": rng.integers(0, 65536, (5, 7), dtype=np.uint16),
    "32FC1": rng.normal(size=(5, 7)).astype(np.float32),
    "32FC3": rng.normal(size=(5, 7, 3)).astype(np.float32),
    "32FC16": rng.normal(size=(5, 7, 16)).astype(np.float32),
    "32FC33": rng.normal(size=(5, 7, 33)).astype(np.float32),
    "16FC1": rng.normal(size=(5, 7)).astype(np.float16),
    "16FC32": rng.normal(size=(5, 7, 32)).astype(np.float16),
}


@pytest.mark.parametrize("encoding", sorted(CASES))
def test_round_trip(encoding):
    array = CASES[encoding]
    msg = numpy_to_image(array, encoding)
    assert isinstance(msg, Image)
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step * msg.height == len(msg.data)
    back = image_to_numpy(msg)
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable
    assert back.dtype == (np.float32 if array.dtype == np.float16 else array.dtype)  # half floats come out float32


def test_16fc_is_ieee_half_little_endian_with_two_bytes_per_channel():
    """The package's 16FC<D> convention, byte for byte: step = width * D * 2, IEEE binary16, little-endian."""
    values = np.array([[[1.0, -0.5, 0.0]], [[65504.0, 2.0**-14, -2.0]]], np.float16)  # 2 rows, 1 column, D = 3
    msg = numpy_to_image(values, "16FC3")
    assert (msg.height, msg.width, msg.step, msg.is_bigendian) == (2, 1, 6, 0)
    assert bytes(msg.data)[:6] == bytes([0x00, 0x3C, 0x00, 0xB8, 0x00, 0x00])
    np.testing.assert_array_equal(image_to_numpy(msg), values.astype(np.float32))


def test_16fc_rejects_float32_and_mislabelled_32fc_data():
    with pytest.raises(ValueError, match="needs dtype float16"):
        numpy_to_image(CASES["32FC16"], "16FC16")
    msg = numpy_to_image(CASES["32FC16"], "32FC16")  # float32 bytes, then labelled as half floats
    msg.encoding, msg.step = "16FC16", msg.step // 2
    with pytest.raises(ValueError, match=r"too long: 2240 bytes .* \(1120 expected\)"):
        image_to_numpy(msg)


def test_bgr8_bytes_are_in_bgr_order():
    rgb = np.zeros((1, 1, 3), np.uint8)
    rgb[0, 0] = (10, 20, 30)
    assert bytes(numpy_to_image(rgb, "bgr8").data) == bytes([30, 20, 10])
    assert bytes(numpy_to_image(rgb, "rgb8").data) == bytes([10, 20, 30])


@pytest.mark.parametrize("encoding", ["rgb8", "mono16", "32FC16", "16FC32"])
def test_step_padding_is_honoured(encoding):
    array = CASES[encoding]
    msg = numpy_to_image(array, encoding)
    pad = 13
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    padded = np.concatenate([rows, np.full((msg.height, pad), 0xAB, np.uint8)], axis=1)
    msg.step += pad
    msg.data = padded.tobytes()
    np.testing.assert_array_equal(image_to_numpy(msg), array)


@pytest.mark.parametrize("encoding", ["mono16", "32FC1", "32FC16", "16FC1", "16FC32"])
def test_big_endian_data(encoding):
    array = CASES[encoding]
    msg = numpy_to_image(array, encoding)
    msg.data = array.astype(array.dtype.newbyteorder(">")).tobytes()
    msg.is_bigendian = 1
    back = image_to_numpy(msg)
    np.testing.assert_array_equal(back, array)
    assert back.dtype.isnative


def test_errors_say_what_was_expected():
    msg = numpy_to_image(CASES["rgb8"], "rgb8")
    msg.encoding = "yuv422"
    with pytest.raises(ValueError, match="unsupported image encoding 'yuv422'"):
        image_to_numpy(msg)
    msg = numpy_to_image(CASES["rgb8"], "rgb8")
    msg.data = bytes(msg.data)[:-1]
    with pytest.raises(ValueError, match=r"truncated: 104 bytes .* \(105 expected\)"):
        image_to_numpy(msg)
    msg.data = bytes(numpy_to_image(CASES["rgb8"], "rgb8").data) + b"\x00"
    with pytest.raises(ValueError, match=r"too long: 106 bytes .* \(105 expected\)"):
        image_to_numpy(msg)
    with pytest.raises(ValueError, match="zero size"):
        image_to_numpy(Image(encoding="rgb8", height=0, width=4, step=12))
    msg = numpy_to_image(CASES["rgb8"], "rgb8")
    msg.step = 5
    with pytest.raises(ValueError, match="step 5 is smaller"):
        image_to_numpy(msg)
    with pytest.raises(ValueError, match="needs 3 channel"):
        numpy_to_image(CASES["mono8"], "rgb8")
    with pytest.raises(ValueError, match="needs dtype float32"):
        numpy_to_image(CASES["32FC16"].astype(np.float64), "32FC16")


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_round_trip(fmt):
    yy, xx = np.mgrid[0:32, 0:48]
    rgb = np.stack([xx * 5, yy * 7, (xx + yy) * 2], axis=-1).astype(np.uint8)
    msg = numpy_to_compressed(rgb, fmt)
    assert isinstance(msg, CompressedImage) and msg.format == fmt
    back = compressed_to_numpy(msg)
    assert back.shape == rgb.shape
    tolerance = 0 if fmt == "png" else 12
    assert np.abs(back.astype(int) - rgb).max() <= tolerance
    grey = compressed_to_numpy(numpy_to_compressed(rgb[..., 0], "png"))
    np.testing.assert_array_equal(grey, rgb[..., 0])


def test_corrupt_compressed_is_a_value_error():
    with pytest.raises(ValueError, match="could not be decoded"):
        compressed_to_numpy(CompressedImage(format="jpeg", data=b"\x00\x01garbage"))
    with pytest.raises(ValueError, match="no data"):
        compressed_to_numpy(CompressedImage(format="jpeg", data=b""))


def test_to_rgb8_for_the_network():
    assert to_rgb8(CASES["mono8"]).shape == (5, 7, 3)
    assert to_rgb8(CASES["mono16"]).dtype == np.uint8
    np.testing.assert_array_equal(to_rgb8(CASES["rgba8"]), CASES["rgba8"][..., :3])
    with pytest.raises(ValueError, match="camera image"):
        to_rgb8(CASES["32FC16"])


def test_works_on_rosbags_messages():
    """The same functions decode messages deserialised by the rosbags library (no rclpy objects)."""
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    Img = store.types["sensor_msgs/msg/Image"]
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    template = Img(
        header=Header(stamp=Time(sec=1, nanosec=2), frame_id="cam"),
        height=0,
        width=0,
        encoding="",
        is_bigendian=0,
        step=0,
        data=np.zeros(0, np.uint8),
    )
    msg = numpy_to_image(CASES["bgr8"], "bgr8", msg=template)
    raw = store.serialize_cdr(msg, "sensor_msgs/msg/Image")
    back = image_to_numpy(store.deserialize_cdr(raw, "sensor_msgs/msg/Image"))
    np.testing.assert_array_equal(back, CASES["bgr8"])
