"""Loop closure runs in the mapping thread and its correction is applied between frames; a correction moves
keyframes made while it was solved with the newest keyframe of its graph and keeps BA's work done meanwhile."""

import threading

import numpy as np
import pytest

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.se3 import se3_exp
from dense_descriptors_ros.geometry.trajectory import Trajectory
from dense_descriptors_ros.metrics.trajectory import absolute_trajectory_error
from dense_descriptors_ros.slam.loop_closure import LoopCloser, LoopClosureEvent, LoopCorrection, apply_loop_correction
from dense_descriptors_ros.slam.map import KeyFrame, SlamMap
from dense_descriptors_ros.slam.stereo_slam import StereoSlam, StereoSlamConfig
from dense_descriptors_ros.synthetic.box_room import synthetic_stereo_sequence

CAMERA = StereoCamera(fx=260.0, fy=260.0, cx=159.5, cy=119.5, baseline=0.2, width=320, height=240)


@pytest.fixture(scope="module")
def loop_sequence():
    """A full circle and a bit more, 60 frames per turn: the camera comes back to where it started."""
    return synthetic_stereo_sequence(CAMERA, 70, turns=70 / 60)


def test_a_loop_is_detected_and_solved_in_the_mapping_thread(loop_sequence, monkeypatch):
    solved_in = []
    check = LoopCloser.check

    def spy(self, keyframe_id, solver):
        found = check(self, keyframe_id, solver)
        if found is not None:
            solved_in.append(threading.current_thread().name)
        return found

    monkeypatch.setattr(LoopCloser, "check", spy)
    config = StereoSlamConfig()
    config.mapping.synchronous = False  # the mapping thread, with GTSAM in its worker process
    slam = StereoSlam(CAMERA, config, model_id="oracle-16", initial_pose=loop_sequence[0].T_world_cam)
    results = []
    for f in loop_sequence:
        results.append(slam.process(f.stamp, f.left, f.right, f.left_desc, f.right_desc))
        # A camera slow enough for mapping to keep up (corrections still reach tracking at the next frame): without
        # it the accuracy depends on the machine's load.
        assert slam.mapper.wait_idle(60)
    slam.wait_for_mapping(timeout=60)
    slam.close()
    assert solved_in and set(solved_in) == {"slam-local-mapping"}
    events = slam.loop_closer.events
    assert events[0].match_keyframe <= 2 and events[0].pose_graph_ms > 0
    # Every correction reached the tracking side: at a frame, or (the last one) when mapping was waited for.
    assert sum(r.loop_closure is not None for r in results) >= len(events) - 1
    gt = Trajectory(np.array([f.stamp for f in loop_sequence]), np.array([f.T_world_cam for f in loop_sequence]))
    assert absolute_trajectory_error(slam.trajectory(), gt)["rmse"] < 0.005 * gt.path_length()


def _keyframe(kf_id: int, T: np.ndarray) -> KeyFrame:
    return KeyFrame(
        kf_id, float(kf_id), T.copy(), np.zeros((1, 2)), np.ones((1, 2), np.float32), np.zeros(1), -np.ones(1, int)
    )


def test_a_correction_moves_late_keyframes_with_the_newest_one_and_keeps_later_ba_work():
    slam_map = SlamMap(2, np.float32)
    poses = [se3_exp(np.array([1.0 * k, 0.0, 0.0, 0.0, 0.1 * k, 0.0])) for k in range(4)]
    for k in range(3):
        slam_map.add_keyframe(_keyframe(k, poses[k]))
    # The pose graph moved keyframe 1 by C1 and keyframe 2 by C2 (keyframe 0 held).
    C1 = se3_exp(np.array([0.0, 0.1, 0.0, 0.0, 0.0, 0.02]))
    C2 = se3_exp(np.array([0.0, 0.3, 0.0, 0.0, 0.0, 0.05]))
    before = {k: poses[k].copy() for k in range(3)}
    after = {0: poses[0].copy(), 1: C1 @ poses[1], 2: C2 @ poses[2]}
    # Meanwhile BA nudged keyframe 1, and tracking made keyframe 3 with a point of its own.
    nudge = se3_exp(np.array([0.01, 0.0, 0.0, 0.0, 0.0, 0.0]))
    slam_map.keyframes[1].T_world_cam = nudge @ poses[1]
    slam_map.add_keyframe(_keyframe(3, poses[3]))
    point = slam_map.add_points(np.array([[3.0, 0.5, 4.0]]), np.ones((1, 2), np.float32), poses[3][:3, 3], 3)
    event = LoopClosureEvent(2, 0, 30, 0.3, 1.0)
    correction = LoopCorrection(event, before, after, 2, np.zeros(0, int), np.zeros(0, int))
    version = slam_map.version
    corrections = apply_loop_correction(slam_map, correction)
    np.testing.assert_allclose(slam_map.keyframes[0].T_world_cam, poses[0], atol=1e-12)
    np.testing.assert_allclose(slam_map.keyframes[1].T_world_cam, C1 @ nudge @ poses[1], atol=1e-12)
    np.testing.assert_allclose(slam_map.keyframes[2].T_world_cam, C2 @ poses[2], atol=1e-12)
    np.testing.assert_allclose(slam_map.keyframes[3].T_world_cam, C2 @ poses[3], atol=1e-12)
    np.testing.assert_allclose(corrections[3], C2, atol=1e-12)
    np.testing.assert_allclose(slam_map.positions[point[0]], C2[:3, :3] @ [3.0, 0.5, 4.0] + C2[:3, 3], atol=1e-12)
    assert slam_map.version == version + 1  # a BA solved before the correction is dropped
