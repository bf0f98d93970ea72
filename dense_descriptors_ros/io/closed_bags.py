"""Which rosbag2 bags in a folder are closed: the adapt loop trains on a recorder's bags once they stop growing.

rosbag2 writes no "closed" mark: while a bag is open the recorder rewrites its metadata.yaml at every flush (every
``flush_period``, 0.5 s), so a bag whose files have not changed for a few seconds is taken as closed.
"""

from __future__ import annotations

import time
from pathlib import Path

from dense_descriptors_ros.io.frame_sources import is_rosbag


def closed_bags(folder: str | Path, settle: float, now: float | None = None) -> list[Path]:
    """The bag folders and .mcap/.db3 files directly in ``folder`` none of whose files changed in the last ``settle``
    seconds, oldest first."""
    now = time.time() if now is None else now
    found = []
    for path in Path(folder).iterdir():
        if not is_rosbag(path):
            continue
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        changed = max((p.stat().st_mtime for p in files), default=now)
        if now - changed >= settle:
            found.append((changed, path))
    return [path for _, path in sorted(found)]
