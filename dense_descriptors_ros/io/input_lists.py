"""Inputs named in bulk: a folder of rosbag2s (e.g. a recorder's output_dir) or a text file listing inputs.

``expand_inputs`` turns what a user passes to ``train --data`` into the list of single inputs (videos, image
folders, bags) the frame sources open.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from dense_descriptors_ros.io.frame_sources import IMAGE_SUFFIXES, is_rosbag

LIST_SUFFIXES = (".txt", ".list")


def read_input_list(path: Path) -> list[Path]:
    """The inputs named in a text file, one a line; blank lines and ``#`` comments are skipped, relative paths are
    relative to the file's folder."""
    inputs = []
    for line in path.read_text().splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            named = Path(entry).expanduser()
            inputs.append(named if named.is_absolute() else path.parent / named)
    if not inputs:
        raise ValueError(f"{path}: the input list names no video, image folder or rosbag2")
    return inputs


def bags_in_folder(folder: Path) -> list[Path]:
    """The rosbag2 folders directly inside ``folder``, sorted by name. (A folder holding .mcap/.db3 files itself is
    one bag, e.g. a recording cut before its metadata.yaml was written.)"""
    return sorted(p for p in folder.iterdir() if p.is_dir() and is_rosbag(p))


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Each path as it is, except a text file listing inputs (.txt/.list) and a folder of bags (a folder that is
    neither a bag nor an image folder), which stand for what they name or hold."""
    expanded: list[Path] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            expanded.extend(read_input_list(path))
        elif path.is_dir() and not is_rosbag(path) and not _has_images(path):
            bags = bags_in_folder(path)
            if not bags:
                raise ValueError(f"{path}: neither an image folder, a rosbag2 nor a folder of rosbag2s")
            expanded.extend(bags)
        else:
            expanded.append(path)
    return expanded


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())
