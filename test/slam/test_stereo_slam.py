"""StereoSlam end to end on rendered stereo sequences (a textured box room, see synthetic/box_room.py): tracking
accuracy against ground truth for learned (descriptor oracle) and ORB features, threaded local mapping, loop
closure, input checks."""

import numpy as np
import pytest

from dense_descriptors_ros.geometry.trajectory import Trajectory
from dense_descriptors_ros.metrics.trajectory import absolute_trajectory_error
from dense_descriptors_ros.slam.stereo_slam import StereoSlam, StereoSlamConfig, TrackingState


def ground_truth(frames) -> Trajectory:
    return Trajectory(np.array([f.stamp for f in frames]), np.array([f.T_world_cam for f in frames]))


@pytest.mark.parametrize("feature_type, max_ate_percent", [("learned", 0.5), ("orb", 1.0)])
def test_tracks_a_rendered_sequence(arc_sequence, feature_type, max_ate_percent, box_room_camera, run_slam):
    slam, results = run_slam(arc_sequence, feature_type)
    gt = ground_truth(arc_sequence)
    assert all(r.state in (TrackingState.TRACKING, TrackingState.RELOCALIZED) for r in results)
    assert sum(r.state == TrackingState.TRACKING for r in results) >= len(results) - 2
    ate = absolute_trajectory_error(slam.trajectory(), gt)
    assert ate["rmse"] < max_ate_percent / 100 * gt.path_length()
    assert slam.mapper.stats.bundle_adjustments >= 3
    assert len(slam.map.keyframes) >= 4 and len(slam.map_points()) > 500
    for r in results[1:]:
        assert len(r.tracked_pixels) >= 50 and box_room_camera.in_image(r.tracked_pixels).all()
    slam.close()


def test_threaded_local_mapping_keeps_tracking(arc_sequence, run_slam):
    slam, results = run_slam(arc_sequence, "learned", synchronous=False)
    assert slam.mapper.stats.bundle_adjustments >= 1
    assert all(r.state != TrackingState.LOST for r in results)
    gt = ground_truth(arc_sequence)
    assert absolute_trajectory_error(slam.trajectory(), gt)["rmse"] < 0.01 * gt.path_length()
    slam.close()


def test_loop_closure_fires_and_lowers_ate(loop_sequence, run_slam):
    gt = ground_truth(loop_sequence)
    # Without BA the odometry drifts enough for the loop correction to matter.
    open_slam, _ = run_slam(loop_sequence, bundle_adjustment=False, loop_closure=False)
    closed_slam, results = run_slam(loop_sequence, bundle_adjustment=False, loop_closure=True)
    events = [r.loop_closure for r in results if r.loop_closure is not None]
    assert len(events) >= 1
    assert events[0].match_keyframe <= 2  # closed against the start of the circle
    ate_open = absolute_trajectory_error(open_slam.trajectory(), gt)["rmse"]
    ate_closed = absolute_trajectory_error(closed_slam.trajectory(), gt)["rmse"]
    assert ate_closed < 0.8 * ate_open
    end_open = np.linalg.norm(open_slam.trajectory().poses[-1][:3, 3] - gt.poses[-1][:3, 3])
    end_closed = np.linalg.norm(closed_slam.trajectory().poses[-1][:3, 3] - gt.poses[-1][:3, 3])
    assert end_closed < end_open


def test_bad_inputs_are_rejected(first_frame, box_room_camera):
    f = first_frame
    slam = StereoSlam(box_room_camera, StereoSlamConfig(feature_type="learned"))
    with pytest.raises(ValueError, match="dense descriptor image"):
        slam.process(0.0, f.left, f.right)
    with pytest.raises(ValueError, match="camera is 320x240"):
        slam.process(0.0, f.left[:100], f.right[:100], f.left_desc[:100], f.right_desc[:100])
    with pytest.raises(ValueError, match="descriptor image must be"):
        slam.process(0.0, f.left, f.right, f.left_desc[:, :, :1].squeeze(-1), f.right_desc)
    slam.process(1.0, f.left, f.right, f.left_desc, f.right_desc)
    with pytest.raises(ValueError, match="stamps must increase"):
        slam.process(0.5, f.left, f.right, f.left_desc, f.right_desc)
    with pytest.raises(ValueError, match="feature_type"):
        StereoSlam(box_room_camera, StereoSlamConfig(feature_type="sift"))
    slam.close()
