"""Fixtures shared by the SLAM tests: stereo sequences rendered in the textured box room (synthetic/box_room.py,
with the descriptor oracle as the dense descriptor image) and a StereoSlam run over them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.slam.stereo_slam import SlamResult, StereoSlam, StereoSlamConfig
from dense_descriptors_ros.synthetic.box_room import StereoFrame, synthetic_stereo_sequence


@pytest.fixture(scope="session")
def box_room_camera() -> StereoCamera:
    return StereoCamera(fx=260.0, fy=260.0, cx=159.5, cy=119.5, baseline=0.2, width=320, height=240)


@pytest.fixture(scope="module")
def arc_sequence(box_room_camera: StereoCamera) -> list[StereoFrame]:
    """30 frames along a third of a circle (about 4 m, 120 degrees of turn)."""
    return synthetic_stereo_sequence(box_room_camera, 30, turns=30 / 90)


@pytest.fixture(scope="module")
def first_frame(box_room_camera: StereoCamera) -> StereoFrame:
    """The first frame of ``arc_sequence``, rendered alone."""
    return synthetic_stereo_sequence(box_room_camera, 1, turns=30 / 90)[0]


@pytest.fixture(scope="module")
def loop_sequence(box_room_camera: StereoCamera) -> list[StereoFrame]:
    """A full circle and a bit more, 60 frames per turn: the camera comes back to where it started."""
    return synthetic_stereo_sequence(box_room_camera, 70, turns=70 / 60)


@pytest.fixture(scope="module")
def run_slam(box_room_camera: StereoCamera) -> Callable[..., tuple[StereoSlam, list[SlamResult]]]:
    """``run_slam(frames, feature_type="learned", synchronous=True, bundle_adjustment=True, loop_closure=True)``:
    StereoSlam over ``frames`` from the first frame's true pose; returns the SLAM (close it) and its results."""

    def run(
        frames: list[StereoFrame],
        feature_type: str = "learned",
        synchronous: bool = True,
        bundle_adjustment: bool = True,
        loop_closure: bool = True,
        model_id: str = "oracle-16",
    ) -> tuple[StereoSlam, list[SlamResult]]:
        config = StereoSlamConfig(feature_type=feature_type)
        config.mapping.synchronous = synchronous
        config.mapping.enabled = bundle_adjustment
        config.loop_closure.enabled = loop_closure
        slam = StereoSlam(box_room_camera, config, model_id=model_id, initial_pose=frames[0].T_world_cam)
        results = [slam.process(f.stamp, f.left, f.right, f.left_desc, f.right_desc) for f in frames]
        slam.wait_for_mapping(timeout=60)
        return slam, results

    return run
