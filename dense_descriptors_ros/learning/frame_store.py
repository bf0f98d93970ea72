"""The frames of one training input kept on disk at the training size and read back through memory maps.

A long bag is streamed once, frame by frame (never held whole in memory), into ``<key>.frames`` (and
``<key>.flow_frames`` at the flow size); training then reads the frames it needs from a copy-on-write memory map, so
RAM holds only what the page cache keeps, and processes training on one machine (DDP ranks) share one copy. The
key covers the input's path, size and modification times and the frame selection, so a changed input is stored
anew. Files are written under unique temporary names and renamed, ``<key>.json`` last: a store is complete when
its json exists, and two processes storing the same input at once leave one whole copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from dense_descriptors_ros.io.atomic_files import atomic_write_text

PARTS = ("frames", "flow_frames")


def input_key(path: str | Path, **selection: Any) -> str:
    """A key for the frames of ``path`` read with ``selection``: changes when the input's files change."""
    path = Path(path).resolve()
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.is_file()]
    text = json.dumps({"path": str(path), "files": stats, "selection": selection}, sort_keys=True, default=str)
    return f"{path.name}-{hashlib.sha1(text.encode()).hexdigest()[:16]}"


def load_stored(folder: Path, key: str) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The stored (frames, flow frames or None) of ``key`` as copy-on-write memory maps (writes stay in this process,
    never reach the files), or None when not stored."""
    meta_file = folder / f"{key}.json"
    if not meta_file.is_file():
        return None
    meta = json.loads(meta_file.read_text())
    maps = []
    for part in PARTS:
        shape = meta.get(part)
        maps.append(np.memmap(folder / f"{key}.{part}", np.uint8, "c", shape=tuple(shape)) if shape else None)
    return maps[0], maps[1]


def store_frames(
    folder: Path, key: str, frames: Iterable[tuple[np.ndarray, np.ndarray | None]]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Write (frame, flow frame or None) pairs as the store ``key`` and return it as memory maps."""
    folder.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    temporary = {part: folder / f"{key}.{part}.{token}" for part in PARTS}
    shapes: dict[str, list[int] | None] = dict.fromkeys(PARTS)
    try:
        with temporary["frames"].open("wb") as small, temporary["flow_frames"].open("wb") as large:
            for frame, flow_frame in frames:
                for part, image, file in (("frames", frame, small), ("flow_frames", flow_frame, large)):
                    if image is None:
                        continue
                    shape = shapes[part] or [0, *image.shape]
                    if list(image.shape) != shape[1:]:
                        raise ValueError(f"{key}: frame of shape {image.shape} among frames of {shape[1:]}")
                    file.write(np.ascontiguousarray(image, np.uint8).tobytes())
                    shapes[part] = [shape[0] + 1, *shape[1:]]
        if shapes["frames"] is None:
            return np.zeros((0, 1, 1, 3), np.uint8), None
        for part in PARTS:
            if shapes[part]:
                temporary[part].replace(folder / f"{key}.{part}")
        atomic_write_text(folder / f"{key}.json", json.dumps(shapes))  # last: it marks the store complete
    finally:
        for file in temporary.values():
            file.unlink(missing_ok=True)
    stored = load_stored(folder, key)
    assert stored is not None
    return stored
