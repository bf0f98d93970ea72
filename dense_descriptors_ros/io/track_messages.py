"""Tracks <-> ROS messages: PointCloud2 (x, y, z, id, score, visible) and a MarkerArray for rviz.

The cloud holds pixel coordinates (x = column, y = row, z = 0) in the image's frame; ``sensor_msgs_py`` builds
it when importable (a ROS install), this module's packer otherwise (same bytes, tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from geometry_msgs.msg import Point
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from dense_descriptors_ros.tracking.point_tracker import TrackFrame
from dense_descriptors_ros.tracking.track_drawing import track_color

try:  # pragma: no cover - only on a machine with a ROS install
    from sensor_msgs_py import point_cloud2
except ImportError:
    point_cloud2 = None

TRACK_FIELDS = (
    ("x", PointField.FLOAT32, np.float32),
    ("y", PointField.FLOAT32, np.float32),
    ("z", PointField.FLOAT32, np.float32),
    ("id", PointField.UINT32, np.uint32),
    ("score", PointField.FLOAT32, np.float32),
    ("visible", PointField.UINT8, np.uint8),
)
_NUMPY_OF = {
    PointField.INT8: np.int8,
    PointField.UINT8: np.uint8,
    PointField.INT16: np.int16,
    PointField.UINT16: np.uint16,
    PointField.INT32: np.int32,
    PointField.UINT32: np.uint32,
    PointField.FLOAT32: np.float32,
    PointField.FLOAT64: np.float64,
}


def tracks_to_pointcloud2(frame: TrackFrame, header: Any) -> PointCloud2:
    """One point per track: pixel position, id, score and visibility, in the input image's header."""
    dtype = np.dtype([(name, np_type) for name, _, np_type in TRACK_FIELDS])
    points = np.zeros(len(frame), dtype=dtype)
    points["x"], points["y"] = frame.positions[:, 0], frame.positions[:, 1]
    points["id"] = frame.ids.astype(np.uint32)
    points["score"] = frame.scores
    points["visible"] = frame.visible.astype(np.uint8)
    fields = [
        PointField(name=name, offset=dtype.fields[name][1], datatype=ros_type, count=1)
        for name, ros_type, _ in TRACK_FIELDS
    ]
    if point_cloud2 is not None:  # pragma: no cover - ROS install
        return point_cloud2.create_cloud(header, fields, points)
    msg = PointCloud2(
        header=header,
        height=1,
        width=len(points),
        fields=fields,
        is_bigendian=False,
        point_step=dtype.itemsize,
        row_step=dtype.itemsize * len(points),
        is_dense=True,
    )
    msg.data = points.tobytes()
    return msg


def pointcloud2_to_array(msg: PointCloud2) -> np.ndarray:
    """A PointCloud2 as a structured numpy array with one named column per field (any field layout)."""
    dtype = np.dtype(
        {
            "names": [f.name for f in msg.fields],
            "formats": [_NUMPY_OF[f.datatype] for f in msg.fields],
            "offsets": [f.offset for f in msg.fields],
            "itemsize": msg.point_step,
        }
    )
    if msg.is_bigendian:
        dtype = dtype.newbyteorder(">")
    count = msg.width * msg.height
    data = bytes(msg.data)
    if len(data) < count * msg.point_step:
        raise ValueError(f"PointCloud2 data has {len(data)} bytes, {count} points of {msg.point_step} need more")
    return np.frombuffer(data, dtype=dtype, count=count)


def tracks_to_markers(frame: TrackFrame, header: Any, pixel_scale: float, labels: bool = True) -> MarkerArray:
    """rviz markers: one POINTS marker (id 0) for all visible tracks, plus one text label per track (id = 1 + track id).

    Marker ids are stable (derived from track ids); labels of tracks that were removed are deleted by the caller
    with :func:`delete_all_markers` on reset. ``pixel_scale`` turns pixels into metres in the image's frame.
    """
    markers = MarkerArray()
    points = Marker(header=header, ns="tracks", id=0, type=Marker.POINTS, action=Marker.ADD)
    points.scale.x = points.scale.y = 6 * pixel_scale
    points.pose.orientation.w = 1.0
    for track_id, (x, y), visible in zip(frame.ids, frame.positions, frame.visible, strict=True):
        if not visible:
            continue
        points.points.append(Point(x=float(x) * pixel_scale, y=float(y) * pixel_scale, z=0.0))
        r, g, b = track_color(int(track_id))
        points.colors.append(ColorRGBA(r=r / 255, g=g / 255, b=b / 255, a=1.0))
    markers.markers.append(points)
    if labels:
        for track_id, (x, y), visible in zip(frame.ids, frame.positions, frame.visible, strict=True):
            text = Marker(header=header, ns="track_labels", id=1 + int(track_id), type=Marker.TEXT_VIEW_FACING)
            text.action = Marker.ADD if visible else Marker.DELETE
            text.pose.position = Point(x=float(x) * pixel_scale, y=float(y - 8) * pixel_scale, z=0.0)
            text.pose.orientation.w = 1.0
            text.scale.z = 10 * pixel_scale
            text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
            text.text = str(int(track_id))
            markers.markers.append(text)
    return markers


def delete_all_markers(header: Any) -> MarkerArray:
    """A MarkerArray with one DELETEALL marker (sent on reset, so rviz drops stale labels)."""
    return MarkerArray(markers=[Marker(header=header, action=Marker.DELETEALL)])
