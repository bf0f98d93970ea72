"""SlamResult -> ROS messages: the status line (std_msgs/String, JSON) and the tracked-features image."""

from __future__ import annotations

import json
from typing import Any

import cv2
import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import String

from dense_descriptors_ros.io.image_conversion import numpy_to_image
from dense_descriptors_ros.slam.stereo_slam import SlamResult


def status_message(result: SlamResult, bad_input: int, dropped_frames: int, mode: str = "mapping") -> String:
    """Tracking state, counts and timing of one frame as a JSON object."""
    status = {
        "mode": mode,
        "state": result.state.value,
        "tracked": len(result.tracked_point_ids),
        "keypoints": result.num_keypoints,
        "keyframe": bool(result.is_keyframe),
        "loop_closure": result.loop_closure is not None,
        "tracking_ms": round(result.timings_ms.get("total_ms", 0.0), 2),
        "bad_input": bad_input,
        "dropped_frames": dropped_frames,
    }
    return String(data=json.dumps(status))


def tracked_features_image(left: np.ndarray, result: SlamResult, header: Any) -> Image:
    """The left RGB image with a green circle on every tracked keypoint, as bgr8 with the input's header."""
    canvas = left.copy()
    for x, y in np.asarray(result.tracked_pixels).reshape(-1, 2):
        cv2.circle(canvas, (round(float(x)), round(float(y))), 3, (0, 255, 0), 1, cv2.LINE_AA)
    image = numpy_to_image(canvas, "bgr8")
    image.header = header
    return image
