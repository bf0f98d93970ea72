"""Annotated images of tracks: a coloured dot and id per track, trails of recent positions, hollow when occluded."""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from dense_descriptors_ros.tracking.point_tracker import TrackFrame


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable, well-spread RGB colour per track id (golden-ratio hue steps)."""
    hue = int((track_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.array([[[hue, 220, 255]]], dtype=np.uint8)
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


class TrackTrails:
    """The last ``length`` visible positions of each live track, updated once per frame."""

    def __init__(self, length: int = 15) -> None:
        self.length = length
        self._trails: dict[int, deque] = {}

    def reset(self) -> None:
        self._trails.clear()

    def update(self, frame: TrackFrame) -> dict[int, deque]:
        """Forget tracks no longer in ``frame``, append the visible positions; returns the trails by track id."""
        alive = set(int(i) for i in frame.ids)
        for track_id in list(self._trails):
            if track_id not in alive:
                del self._trails[track_id]
        for track_id, (x, y), visible in zip(frame.ids, frame.positions, frame.visible, strict=True):
            trail = self._trails.setdefault(int(track_id), deque(maxlen=self.length))
            if visible:
                trail.append((float(x), float(y)))
        return self._trails


class TrackDrawer:
    """Draws tracks on RGB frames with trails of their last ``trail_length`` visible positions."""

    def __init__(self, trail_length: int = 15, labels: bool = True) -> None:
        self.labels = labels
        self._trails = TrackTrails(trail_length)

    def reset(self) -> None:
        self._trails.reset()

    def draw(self, rgb: np.ndarray, frame: TrackFrame) -> np.ndarray:
        """A copy of ``rgb`` with the tracks of ``frame`` drawn on it."""
        canvas = np.ascontiguousarray(rgb).copy()
        trails = self._trails.update(frame)
        for track_id, (x, y), visible in zip(frame.ids, frame.positions, frame.visible, strict=True):
            track_id = int(track_id)
            color = track_color(track_id)
            trail = trails[track_id]
            centre = (round(float(x)), round(float(y)))
            if len(trail) > 1:
                cv2.polylines(canvas, [np.round(np.array(trail)).astype(np.int32)], False, color, 1, cv2.LINE_AA)
            cv2.circle(canvas, centre, 4, color, -1 if visible else 1, cv2.LINE_AA)
            if self.labels:
                cv2.putText(
                    canvas,
                    str(track_id),
                    (centre[0] + 5, centre[1] - 5),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.35,
                    color,
                    1,
                    cv2.LINE_AA,
                )
        return canvas
