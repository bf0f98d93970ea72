"""GTSAM, the SLAM's optimisation back-end: the import (a clear error when it is missing) and conversions.

GTSAM orders a Pose3 tangent vector (rotation, translation) and perturbs poses on the right (T * Exp(xi)); the rest
of the package orders twists (translation, rotation) (geometry/se3.py). :func:`covariance_from_gtsam` converts a
marginal covariance between the two orders.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from dense_descriptors_ros.geometry.camera import StereoCamera

GTSAM_REQUIREMENT = "gtsam==4.3.0"


class GtsamMissingError(RuntimeError):
    """GTSAM (the SLAM's bundle adjustment and pose graph back-end) cannot be imported."""


def require_gtsam() -> ModuleType:
    """The gtsam module, or :class:`GtsamMissingError` saying how to install it."""
    try:
        import gtsam
    except ImportError as exc:
        raise GtsamMissingError(
            f"the SLAM needs GTSAM for bundle adjustment and loop closure, and `import gtsam` failed ({exc}); "
            f"install it with `pip install {GTSAM_REQUIREMENT}`"
        ) from exc
    return gtsam


def stereo_calibration(camera: StereoCamera):
    """gtsam.Cal3_S2Stereo of a rectified stereo camera."""
    gtsam = require_gtsam()
    return gtsam.Cal3_S2Stereo(camera.fx, camera.fy, 0.0, camera.cx, camera.cy, camera.baseline)


def mono_calibration(camera: StereoCamera):
    """gtsam.Cal3_S2 of the left camera."""
    gtsam = require_gtsam()
    return gtsam.Cal3_S2(camera.fx, camera.fy, 0.0, camera.cx, camera.cy)


def covariance_from_gtsam(covariance: np.ndarray) -> np.ndarray:
    """A 6x6 Pose3 covariance in GTSAM's (rotation, translation) order -> (translation, rotation) order."""
    order = np.array([3, 4, 5, 0, 1, 2])
    return np.asarray(covariance)[np.ix_(order, order)]
