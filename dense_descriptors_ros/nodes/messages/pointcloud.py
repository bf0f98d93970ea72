"""numpy structured arrays <-> sensor_msgs/PointCloud2 (one named column per field).

``sensor_msgs_py`` builds the message when importable (a ROS install), this module's packer otherwise (same
bytes, tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField

try:  # pragma: no cover - only on a machine with a ROS install
    from sensor_msgs_py import point_cloud2
except ImportError:
    point_cloud2 = None

_ROS_TYPE = {
    np.dtype(np.int8): PointField.INT8,
    np.dtype(np.uint8): PointField.UINT8,
    np.dtype(np.int16): PointField.INT16,
    np.dtype(np.uint16): PointField.UINT16,
    np.dtype(np.int32): PointField.INT32,
    np.dtype(np.uint32): PointField.UINT32,
    np.dtype(np.float32): PointField.FLOAT32,
    np.dtype(np.float64): PointField.FLOAT64,
}
_NUMPY_TYPE = {ros: dtype for dtype, ros in _ROS_TYPE.items()}


def array_to_pointcloud2(points: np.ndarray, header: Any) -> PointCloud2:
    """An unorganised cloud (height 1) from a structured array; each named column becomes a field."""
    points = np.ascontiguousarray(points)
    if points.dtype.names is None:
        raise ValueError("array_to_pointcloud2 needs a structured array with named columns (x, y, z, ...)")
    fields = []
    for name in points.dtype.names:
        dtype, offset = points.dtype.fields[name][:2]
        if dtype not in _ROS_TYPE:
            raise ValueError(f"column {name!r} has dtype {dtype}, which PointCloud2 cannot hold")
        fields.append(PointField(name=name, offset=offset, datatype=_ROS_TYPE[dtype], count=1))
    if point_cloud2 is not None:  # pragma: no cover - ROS install
        return point_cloud2.create_cloud(header, fields, points)
    msg = PointCloud2(
        header=header,
        height=1,
        width=len(points),
        fields=fields,
        is_bigendian=False,
        point_step=points.dtype.itemsize,
        row_step=points.dtype.itemsize * len(points),
        is_dense=True,
    )
    msg.data = points.tobytes()
    return msg


def xyz_to_pointcloud2(xyz: np.ndarray, header: Any) -> PointCloud2:
    """(N, 3) points -> a float32 x, y, z cloud."""
    xyz = np.asarray(xyz, np.float32).reshape(-1, 3)
    points = np.zeros(len(xyz), dtype=[("x", np.float32), ("y", np.float32), ("z", np.float32)])
    points["x"], points["y"], points["z"] = xyz.T
    return array_to_pointcloud2(points, header)


def pointcloud2_to_array(msg: PointCloud2) -> np.ndarray:
    """A PointCloud2 as a structured numpy array with one named column per field (any field layout)."""
    dtype = np.dtype(
        {
            "names": [f.name for f in msg.fields],
            "formats": [_NUMPY_TYPE[f.datatype] for f in msg.fields],
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
