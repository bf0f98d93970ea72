"""Tracks -> foxglove_msgs/ImageAnnotations (points, trails, labels) for Foxglove's image panel.

foxglove_msgs is optional: ``FOXGLOVE_AVAILABLE`` says whether it imports, and the tracker node publishes the
annotations only then. Foxglove's image coordinates put the origin at the top-left corner of the top-left pixel,
so positions (pixel centres at integers) are shifted by half a pixel.
"""

from __future__ import annotations

from collections import deque
from types import ModuleType
from typing import Any

from dense_descriptors_ros.tracking.point_tracker import TrackFrame
from dense_descriptors_ros.tracking.track_drawing import track_color

try:
    import foxglove_msgs.msg as foxglove
except ImportError:  # not installed: the node leaves the annotations out
    foxglove = None

FOXGLOVE_AVAILABLE = foxglove is not None


def tracks_to_image_annotations(
    frame: TrackFrame, stamp: Any, trails: dict[int, deque], labels: bool = True, msgs: ModuleType | None = None
) -> Any:
    """One POINTS annotation for the visible tracks (per-track colours), a LINE_STRIP per trail, a text per label.

    ``trails`` maps track ids to recent (x, y) positions (tracking/track_drawing.py's TrackTrails); ``msgs`` is the
    foxglove_msgs.msg module (the installed one by default).
    """
    msgs = msgs or foxglove
    if msgs is None:
        raise ImportError("foxglove_msgs is not installed")

    def point(x: float, y: float) -> Any:
        return msgs.Point2(x=float(x) + 0.5, y=float(y) + 0.5)

    def color(track_id: int) -> Any:
        r, g, b = track_color(track_id)
        return msgs.Color(r=r / 255, g=g / 255, b=b / 255, a=1.0)

    visible = [(int(i), x, y) for i, (x, y), v in zip(frame.ids, frame.positions, frame.visible, strict=True) if v]
    points = msgs.PointsAnnotation(
        timestamp=stamp,
        type=msgs.PointsAnnotation.POINTS,
        points=[point(x, y) for _, x, y in visible],
        outline_colors=[color(i) for i, _, _ in visible],
        thickness=8.0,
    )
    strips = [
        msgs.PointsAnnotation(
            timestamp=stamp,
            type=msgs.PointsAnnotation.LINE_STRIP,
            points=[point(x, y) for x, y in trail],
            outline_color=color(track_id),
            thickness=1.0,
        )
        for track_id, trail in sorted(trails.items())
        if len(trail) > 1
    ]
    texts = [
        msgs.TextAnnotation(
            timestamp=stamp,
            position=point(x + 5, y - 5),
            text=str(track_id),
            font_size=12.0,
            text_color=color(track_id),
            background_color=msgs.Color(r=0.0, g=0.0, b=0.0, a=0.5),
        )
        for track_id, x, y in (visible if labels else [])
    ]
    return msgs.ImageAnnotations(points=[points, *strips], texts=texts)
