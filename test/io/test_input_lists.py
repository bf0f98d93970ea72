"""expand_inputs: a folder of bags and a text file listing inputs stand for what they hold or name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dense_descriptors_ros.io.bag_writer import write_image_bag
from dense_descriptors_ros.io.input_lists import expand_inputs

FRAMES = [np.full((8, 8, 3), k, np.uint8) for k in range(3)]


def test_a_folder_of_bags_stands_for_its_bags_in_name_order(tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    for name in ("rec_002", "rec_001"):
        write_image_bag(recordings / name, FRAMES)
    (recordings / "notes.md").write_text("not an input")
    (recordings / "empty_folder").mkdir()
    bag = recordings / "rec_001"
    assert expand_inputs([recordings]) == [bag, recordings / "rec_002"]
    assert expand_inputs([bag]) == [bag]  # a bag itself is one input


def test_an_input_list_names_inputs_relative_to_itself(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "0.png").write_bytes(b"")
    listing = tmp_path / "lists" / "train.txt"
    listing.parent.mkdir()
    listing.write_text(f"# training inputs\n../images\n\n{tmp_path / 'video.mp4'}  # absolute\n")
    assert expand_inputs([listing, images]) == [listing.parent / "../images", tmp_path / "video.mp4", images]


def test_empty_lists_and_folders_without_inputs_are_errors(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="names no video"):
        expand_inputs([tmp_path / "empty.txt"])
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="folder of rosbag2s"):
        expand_inputs([tmp_path / "folder"])
