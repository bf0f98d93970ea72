"""tracks -> foxglove_msgs/ImageAnnotations: the message construction, on the installed foxglove_msgs when there is
one, and otherwise on a stand-in whose classes accept exactly the fields of the foxglove_msgs .msg definitions
(ImageAnnotations, PointsAnnotation, TextAnnotation, Point2, Color). The stand-in checks field names, coordinates,
colours and trails; it cannot check serialisation or publishing, which need the real package."""

from __future__ import annotations

import importlib.util
from collections import deque
from types import SimpleNamespace

import numpy as np
import pytest
from builtin_interfaces.msg import Time

from dense_descriptors_ros.nodes.messages.foxglove_annotations import FOXGLOVE_AVAILABLE, tracks_to_image_annotations
from dense_descriptors_ros.tracking.point_tracker import TrackFrame
from dense_descriptors_ros.tracking.track_drawing import TrackTrails, track_color


def _message(name: str, fields: tuple[str, ...], **constants: int) -> type:
    def init(self, **values):
        unknown = set(values) - set(fields)
        assert not unknown, f"{name} has no fields {unknown}"
        for key in fields:
            setattr(self, key, values.get(key))

    return type(name, (), {"__init__": init, "__slots__": fields, **constants})


STAND_IN = SimpleNamespace(
    ImageAnnotations=_message("ImageAnnotations", ("circles", "points", "texts")),
    PointsAnnotation=_message(
        "PointsAnnotation",
        ("timestamp", "type", "points", "outline_color", "outline_colors", "fill_color", "thickness"),
        UNKNOWN=0,
        POINTS=1,
        LINE_LOOP=2,
        LINE_STRIP=3,
        LINE_LIST=4,
    ),
    TextAnnotation=_message(
        "TextAnnotation", ("timestamp", "position", "text", "font_size", "text_color", "background_color")
    ),
    Point2=_message("Point2", ("x", "y")),
    Color=_message("Color", ("r", "g", "b", "a")),
)


def _frame(positions: list[tuple[float, float]], visible: list[bool], index: int = 0) -> TrackFrame:
    n = len(positions)
    return TrackFrame(
        frame_index=index,
        ids=np.arange(n, dtype=np.int64) + 3,
        positions=np.array(positions, np.float32),
        scores=np.ones(n, np.float32),
        visible=np.array(visible),
        ages=np.full(n, index, np.int32),
        redetected=np.zeros(n, bool),
    )


def _annotations(msgs):
    trails = TrackTrails(length=4)
    stamp = Time(sec=7, nanosec=5)
    trails.update(_frame([(10.0, 20.0), (30.0, 40.0)], [True, True]))
    last = _frame([(12.0, 21.0), (33.0, 44.0)], [True, False], index=1)
    return tracks_to_image_annotations(last, stamp, trails.update(last), labels=True, msgs=msgs), stamp


def _check(annotations, msgs, stamp) -> None:
    dots, *strips = annotations.points
    assert dots.type == msgs.PointsAnnotation.POINTS and dots.timestamp == stamp
    # Only the visible track (id 3), half a pixel shifted: Foxglove's origin is the corner of the first pixel.
    assert [(p.x, p.y) for p in dots.points] == [(12.5, 21.5)]
    r, g, b = track_color(3)
    assert [(c.r, c.g, c.b, c.a) for c in dots.outline_colors] == [(r / 255, g / 255, b / 255, 1.0)]
    # Track 3 has a two-point trail; track 4 was seen once and is hidden now: no line.
    (strip,) = strips
    assert strip.type == msgs.PointsAnnotation.LINE_STRIP
    assert [(p.x, p.y) for p in strip.points] == [(10.5, 20.5), (12.5, 21.5)]
    (label,) = annotations.texts
    assert label.text == "3" and (label.position.x, label.position.y) == (17.5, 16.5)


def test_annotations_built_from_the_foxglove_msgs_fields():
    annotations, stamp = _annotations(STAND_IN)
    _check(annotations, STAND_IN, stamp)


@pytest.mark.skipif(not FOXGLOVE_AVAILABLE, reason="foxglove_msgs is not installed (no ros-jazzy wheel on PyPI)")
def test_annotations_with_the_installed_foxglove_msgs():
    import foxglove_msgs.msg as msgs

    annotations, stamp = _annotations(msgs)
    _check(annotations, msgs, stamp)
    assert isinstance(annotations, msgs.ImageAnnotations)


def test_without_foxglove_msgs_the_builder_says_so():
    if importlib.util.find_spec("foxglove_msgs") is not None:
        pytest.skip("foxglove_msgs is installed")
    with pytest.raises(ImportError, match="foxglove_msgs"):
        tracks_to_image_annotations(_frame([], []), Time(), {})


def test_trails_keep_the_last_visible_positions_of_live_tracks():
    trails = TrackTrails(length=2)
    for t in range(3):
        out = trails.update(_frame([(float(t), 0.0), (5.0, float(t))], [True, t != 1], index=t))
    assert list(out[3]) == [(1.0, 0.0), (2.0, 0.0)] and list(out[4]) == [(5.0, 0.0), (5.0, 2.0)]
    assert list(trails.update(_frame([(9.0, 9.0)], [True]))) == [3]  # track 4 is gone, its trail too
    assert isinstance(out[3], deque)
