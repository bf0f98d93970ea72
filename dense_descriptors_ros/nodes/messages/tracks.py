"""Tracks -> ROS messages: PointCloud2 (x, y, z, id, score, visible), a MarkerArray and an ImageMarker for rviz.

The cloud and the ImageMarker hold pixel coordinates (x = column, y = row, z = 0, pixel centres at integers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from geometry_msgs.msg import Point
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import ImageMarker, Marker, MarkerArray

from dense_descriptors_ros.nodes.messages.pointcloud import array_to_pointcloud2
from dense_descriptors_ros.tracking.point_tracker import TrackFrame
from dense_descriptors_ros.tracking.track_drawing import track_color

TRACK_DTYPE = np.dtype(
    [
        ("x", np.float32),
        ("y", np.float32),
        ("z", np.float32),
        ("id", np.uint32),
        ("score", np.float32),
        ("visible", np.uint8),
    ]
)


def tracks_to_pointcloud2(frame: TrackFrame, header: Any) -> PointCloud2:
    """One point per track: pixel position, id, score and visibility, in the input image's header."""
    points = np.zeros(len(frame), dtype=TRACK_DTYPE)
    points["x"], points["y"] = frame.positions[:, 0], frame.positions[:, 1]
    points["id"] = frame.ids.astype(np.uint32)
    points["score"] = frame.scores
    points["visible"] = frame.visible.astype(np.uint8)
    return array_to_pointcloud2(points, header)


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


def tracks_to_image_marker(frame: TrackFrame, header: Any, point_radius: float = 4.0) -> ImageMarker:
    """One POINTS ImageMarker (for an image display) with the visible tracks in pixels, one colour per track id."""
    marker = ImageMarker(header=header, ns="tracks", id=0, type=ImageMarker.POINTS, action=ImageMarker.ADD)
    marker.scale = float(point_radius)
    marker.filled = 1
    for track_id, (x, y), visible in zip(frame.ids, frame.positions, frame.visible, strict=True):
        if visible:
            marker.points.append(Point(x=float(x), y=float(y), z=0.0))
            r, g, b = track_color(int(track_id))
            marker.outline_colors.append(ColorRGBA(r=r / 255, g=g / 255, b=b / 255, a=1.0))
    return marker


def delete_all_markers(header: Any) -> MarkerArray:
    """A MarkerArray with one DELETEALL marker (sent on reset, so rviz drops stale labels)."""
    return MarkerArray(markers=[Marker(header=header, action=Marker.DELETEALL)])
