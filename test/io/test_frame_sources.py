"""Frame sources: video, image folder and rosbag2 (mcap / sqlite3, Image / CompressedImage), damaged bags."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from dense_descriptors_ros.io.bag_writer import ImageBagWriter, write_image_bag
from dense_descriptors_ros.io.frame_sources import (
    BagFrameSource,
    ImageFolderFrameSource,
    VideoFrameSource,
    open_frame_source,
)


def _frames(n: int = 12, h: int = 40, w: int = 56) -> list[tuple[float, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [(100.0 + 0.1 * i, rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for i in range(n)]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_image_bag_round_trip_gives_identical_pixels(tmp_path: Path, storage: str) -> None:
    frames = _frames()
    write_image_bag(tmp_path / "bag", frames, topic="/cam/image", storage=storage)
    read = open_frame_source(tmp_path / "bag").read_all()
    assert len(read) == len(frames)
    for (stamp, image), (stamp_read, image_read) in zip(frames, read, strict=True):
        assert stamp_read == pytest.approx(stamp, abs=1e-6)
        np.testing.assert_array_equal(image_read, image)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_compressed_png_bag_round_trip_gives_identical_pixels(tmp_path: Path, storage: str) -> None:
    frames = _frames(5)
    write_image_bag(tmp_path / "bag", frames, storage=storage, compressed=True, compressed_format="png")
    read = open_frame_source(tmp_path / "bag").read_all()
    assert [s for s, _ in read] == pytest.approx([s for s, _ in frames])
    for (_, image), (_, image_read) in zip(frames, read, strict=True):
        np.testing.assert_array_equal(image_read, image)


def test_compressed_jpeg_and_mono_frames_come_back_as_rgb(tmp_path: Path) -> None:
    smooth = cv2.GaussianBlur(_frames(1, 64, 64)[0][1], (0, 0), 4)
    with ImageBagWriter(tmp_path / "jpeg", compressed=True) as writer:
        writer.write(1.0, smooth)
    ((_, image),) = open_frame_source(tmp_path / "jpeg").read_all()
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - smooth).mean() < 4  # jpeg is lossy, colours must not be swapped
    with ImageBagWriter(tmp_path / "mono", encoding="mono8") as writer:
        writer.write(1.0, smooth[..., 0])
    ((_, mono),) = open_frame_source(tmp_path / "mono").read_all()
    assert mono.shape == (64, 64, 3)
    np.testing.assert_array_equal(mono[..., 2], smooth[..., 0])


def test_topic_selection_and_errors(tmp_path: Path) -> None:
    writer = ImageBagWriter(tmp_path / "bag", topic="/a/image")
    with pytest.raises(RuntimeError, match="not open"):
        writer.write(1.0, _frames(1)[0][1])
    with writer:
        for stamp, image in _frames(3):
            writer.write(stamp, image)
    assert BagFrameSource(tmp_path / "bag").topics() == {"/a/image": "sensor_msgs/msg/Image"}
    with pytest.raises(ValueError, match="not in the bag"):
        BagFrameSource(tmp_path / "bag", topic="/b/image").read_all()
    with pytest.raises(FileExistsError):
        ImageBagWriter(tmp_path / "bag").open()
    with pytest.raises(ValueError, match="option"):
        open_frame_source(tmp_path / "bag", fps=10)


def test_selection_stride_time_range_and_max_frames(tmp_path: Path) -> None:
    write_image_bag(tmp_path / "bag", _frames(12))
    stamps = [s for s, _ in open_frame_source(tmp_path / "bag", stride=2, start_time=0.25, end_time=0.95).read_all()]
    assert stamps == pytest.approx([100.3, 100.5, 100.7, 100.9])
    assert len(open_frame_source(tmp_path / "bag", stride=3, max_frames=2).read_all()) == 2
    with pytest.raises(ValueError, match="stride"):
        open_frame_source(tmp_path / "bag", stride=0)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_truncated_bag_yields_readable_frames_and_warns(
    tmp_path: Path, storage: str, caplog: pytest.LogCaptureFixture
) -> None:
    frames = _frames(20)
    bag = write_image_bag(tmp_path / "bag", frames, storage=storage)
    (storage_file,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    os.truncate(storage_file, int(storage_file.stat().st_size * 0.6))
    with caplog.at_level(logging.WARNING):
        read = open_frame_source(bag).read_all()
    assert 5 <= len(read) < len(frames)
    for (stamp, image), (stamp_read, image_read) in zip(frames, read, strict=False):
        assert stamp_read == pytest.approx(stamp)
        np.testing.assert_array_equal(image_read, image)
    assert any(storage_file.name in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records)


def test_bag_without_metadata_is_salvaged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bag = write_image_bag(tmp_path / "bag", _frames(6))
    (bag / "metadata.yaml").unlink()
    with caplog.at_level(logging.WARNING):
        assert len(open_frame_source(bag).read_all()) == 6
    assert any("metadata.yaml" in r.getMessage() for r in caplog.records)


def test_a_file_beyond_salvage_is_a_clear_error_that_leaves_no_temp_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bag = write_image_bag(tmp_path / "bag", _frames(3), storage="sqlite3")
    (bag / "metadata.yaml").unlink()
    (bag / "zz_garbage.db3").write_bytes(b"not a database at all" * 10)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    with pytest.raises(ValueError, match=r"zz_garbage\.db3: not an SQLite database"):
        open_frame_source(bag).read_all()
    assert list(scratch.iterdir()) == []  # the good file's copy went with the failure


def test_image_folder_uses_numeric_names_as_stamps(tmp_path: Path) -> None:
    frames = _frames(4)
    for stamp, image in frames:
        cv2.imwrite(str(tmp_path / f"{stamp:.6f}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    source = open_frame_source(tmp_path, stride=2)
    assert isinstance(source, ImageFolderFrameSource)
    read = source.read_all()
    assert [s for s, _ in read] == pytest.approx([100.0, 100.2])
    np.testing.assert_array_equal(read[1][1], frames[2][1])


def test_video_file_frames(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (56, 40))
    for i in range(8):
        writer.write(np.full((40, 56, 3), (30 * i, 0, 255 - 30 * i), np.uint8))  # BGR
    writer.release()
    source = open_frame_source(path, start_time=0.2, max_frames=3)
    assert isinstance(source, VideoFrameSource)
    read = source.read_all()
    assert [s for s, _ in read] == pytest.approx([0.2, 0.3, 0.4])
    assert abs(int(read[0][1][20, 20, 0]) - 195) < 8  # red channel = 255 - 30 * 2: BGR converted to RGB
    with pytest.raises(FileNotFoundError):
        open_frame_source(tmp_path / "missing.mp4")


def test_bare_images_get_evenly_spaced_stamps(tmp_path: Path) -> None:
    images = [image for _, image in _frames(3)]
    read = open_frame_source(write_image_bag(tmp_path / "bag", images, storage="sqlite3")).read_all()
    assert [s for s, _ in read] == pytest.approx([1.0, 1.0 + 1 / 30, 1.0 + 2 / 30])
    np.testing.assert_array_equal(read[2][1], images[2])
