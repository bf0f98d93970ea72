"""FrameTracker on a map built by StereoSlam over a rendered box room (descriptor oracle): tracking from a perturbed
prediction, relocalisation without one, a lost frame, and the keyframe policy."""

import numpy as np
import pytest

from dense_descriptors_ros.geometry.se3 import invert_pose, rotation_angle, se3_exp
from dense_descriptors_ros.slam.frame_tracker import FrameTracker, StereoFeatures, TrackingConfig
from dense_descriptors_ros.slam.stereo_matching import match_stereo_rows
from dense_descriptors_ros.slam.stereo_slam import StereoSlam
from dense_descriptors_ros.synthetic.box_room import synthetic_stereo_sequence


@pytest.fixture(scope="module")
def mapped(box_room_camera, run_slam):
    """A map of the first 10 frames of 12 (world frame = ground truth) and the two frames after it."""
    frames = synthetic_stereo_sequence(box_room_camera, 12, turns=12 / 90)
    slam, _ = run_slam(frames[:10])
    yield slam, frames[10:]
    slam.close()


def stereo_features(slam: StereoSlam, f, left_desc=None) -> StereoFeatures:
    left_desc = f.left_desc if left_desc is None else left_desc
    left = slam.features.extract(f.left, left_desc)
    right = slam.features.extract(f.right, f.right_desc)
    return StereoFeatures(f.stamp, f.left, left_desc, left, match_stereo_rows(left, right, slam.features, slam.camera))


def new_tracker(slam: StereoSlam, config: TrackingConfig | None = None) -> FrameTracker:
    return FrameTracker(slam.map, slam.camera, slam.features, config or TrackingConfig(), relocalisation_candidates=3)


def pose_error(T: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(metres, degrees) between two poses."""
    delta = invert_pose(truth) @ T
    return float(np.linalg.norm(delta[:3, 3])), float(np.degrees(rotation_angle(delta[:3, :3])))


def test_relocalises_without_a_prediction_then_tracks_from_a_perturbed_one(mapped):
    slam, (f10, f11) = mapped
    tracker = new_tracker(slam)
    tracked = tracker.track(stereo_features(slam, f10), predicted=None, last_pose=None)
    assert tracked is not None and tracked.relocalised
    metres, degrees = pose_error(tracked.T_world_cam, f10.T_world_cam)
    assert metres < 0.02 and degrees < 0.5
    assert tracker.reference_kf in slam.map.keyframes

    found_before = slam.map.found_count.copy()
    predicted = f11.T_world_cam @ se3_exp(np.array([0.05, -0.03, 0.08, 0.01, -0.01, 0.005]))
    tracked = tracker.track(stereo_features(slam, f11), predicted, last_pose=tracked.T_world_cam)
    assert tracked is not None and not tracked.relocalised
    metres, degrees = pose_error(tracked.T_world_cam, f11.T_world_cam)
    assert metres < 0.02 and degrees < 0.5
    assert len(tracked.point_ids) >= 50 and len(np.unique(tracked.point_ids)) == len(tracked.point_ids)
    assert len(np.unique(tracked.keypoint_index)) == len(tracked.keypoint_index)
    np.testing.assert_array_equal(slam.map.found_count[tracked.point_ids], found_before[tracked.point_ids] + 1)
    np.testing.assert_array_equal(tracker.last_tracked_ids, tracked.point_ids)


def test_a_frame_that_matches_nothing_is_lost(mapped):
    slam, (f10, _) = mapped
    noise = np.random.default_rng(0).normal(size=f10.left_desc.shape).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=2, keepdims=True)
    tracker = new_tracker(slam)
    assert tracker.track(stereo_features(slam, f10, left_desc=noise), predicted=None, last_pose=None) is None


def test_keyframe_policy(mapped):
    slam, _ = mapped
    tracker = new_tracker(slam, TrackingConfig(keyframe_max_frames=3, keyframe_min_tracked=50))
    newest = max(slam.map.keyframes)
    tracker.keyframe_inserted(newest)
    seen = int((slam.map.keyframes[newest].point_ids >= 0).sum())
    assert seen > 100
    assert [tracker.keyframe_due(seen) for _ in range(3)] == [False, False, True]  # at the latest every 3 frames
    tracker.keyframe_inserted(newest)
    assert tracker.keyframe_due(int(0.6 * seen))  # below 70 % of the reference keyframe's points
    assert tracker.keyframe_due(49)  # below keyframe_min_tracked
