"""slam_node against bad files, time jumps and unpaired stereo: a clear refusal or an automatic recovery, with a
log line and counts on /diagnostics, and the node keeps working."""

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import Log
from std_srvs.srv import Trigger

from dense_descriptors_ros.nodes.in_process_graph import wait_for
from dense_descriptors_ros.nodes.slam_node import SlamNode
from dense_descriptors_ros.synthetic.box_room import synthetic_stereo_sequence

pytestmark = pytest.mark.ros


@pytest.fixture
def slam(ros, active_node, stereo_rig):
    """``slam(seed, count, name=..., **params)``: an active ORB slam_node, the rig connected to it, its odometry and
    /diagnostics collectors and ``count`` frames of a synthetic stereo sequence."""

    def start(seed, count, name="slam_node", **params):
        values = {"image_qos": "reliable", "slam.feature_type": "orb", "diagnostics_period": 0.2, **params}
        active_node(SlamNode, name, **values)
        odometry = ros.collector(Odometry, "odometry")
        diagnostics = ros.collector(DiagnosticArray, "/diagnostics")
        assert wait_for(stereo_rig.connected)
        frames = synthetic_stereo_sequence(stereo_rig.camera, count, turns=0.05, with_descriptors=False, seed=seed)
        return odometry, diagnostics, frames

    return start


def _play(rig, odometry, frames, stamps, right_offset=0.0, expect_output=True):
    """Publish pairs one at a time; with ``expect_output`` each must give an odometry message."""
    for frame, stamp in zip(frames, stamps, strict=True):
        before = len(odometry)
        rig.publish(frame, stamp, stamp + right_offset)
        got = wait_for(lambda b=before: len(odometry) > b, timeout=60 if expect_output else 2)
        assert got == expect_output, f"stamp {stamp}: odometry {'missing' if expect_output else 'unexpected'}"


def _call(remote, service):
    response = remote.call(Trigger, service, Trigger.Request())
    assert response is not None, f"{service} did not answer"
    return response


def test_truncated_map_is_refused_and_the_node_keeps_working(slam, remote, stereo_rig, tmp_path):
    odometry, _, frames = slam(3, 5, map_dir=str(tmp_path / "first"))
    _play(stereo_rig, odometry, frames[:3], [100.0, 100.1, 100.2])
    assert _call(remote, "/slam_node/save_map").success
    npz = tmp_path / "first" / "map.npz"
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    response = _call(remote, "/slam_node/load_map")
    assert not response.success and "map.npz" in response.message, response.message
    _play(stereo_rig, odometry, frames[3:4], [100.3])  # still tracking


def test_map_dir_changes_at_run_time(slam, remote, stereo_rig, tmp_path):
    odometry, _, frames = slam(3, 2, map_dir=str(tmp_path / "first"))
    _play(stereo_rig, odometry, frames, [100.0, 100.1])
    (result,) = remote.set_parameters("slam_node", map_dir=str(tmp_path / "second"))
    assert result.successful
    response = _call(remote, "/slam_node/save_map")
    assert response.success and "second" in response.message
    assert (tmp_path / "second" / "map.yaml").is_file()


def test_time_going_back_resets_the_map_with_a_warning(slam, stereo_rig, rosout, log_lines, diagnostic_value):
    odometry, diagnostics, frames = slam(4, 4)
    _play(stereo_rig, odometry, frames, [200.0, 200.1, 200.2, 200.3])
    _play(stereo_rig, odometry, frames, [100.0, 100.1, 100.2, 100.3])  # a replayed bag starts again
    warnings = log_lines("slam_node", Log.WARN)
    assert any("time went back" in text for text in warnings), warnings
    assert wait_for(lambda: diagnostic_value(diagnostics, "/slam_node", "time jumps") == "1", timeout=10)


def test_unpaired_stereo_is_reported(slam, stereo_rig, rosout, log_lines, diagnostic_value):
    odometry, diagnostics, frames = slam(5, 4)
    _play(stereo_rig, odometry, frames, [300.0, 300.1, 300.2, 300.3], right_offset=0.02, expect_output=False)
    assert wait_for(lambda: int(diagnostic_value(diagnostics, "/slam_node", "unmatched") or 0) >= 4, timeout=10)
    statuses = [s for a in diagnostics for s in a.status if s.name == "/slam_node"]
    assert any(s.level == DiagnosticStatus.WARN for s in statuses)
    warnings = log_lines("slam_node", Log.WARN)
    assert any("sync_slop" in text for text in warnings), warnings


def test_map_of_another_untrained_network_is_refused(slam, remote, stereo_rig, tmp_path):
    for name, backbone in (("slam_mobilenet", "mobilenet_v2"), ("slam_resnet", "resnet18")):
        params = {
            "slam.feature_type": "learned",
            "model_dir": "untrained",
            "untrained_backbone": backbone,
            "device": "cpu",
        }
        odometry, _, frames = slam(6, 3, name, map_dir=str(tmp_path / "map"), **params)
    for frame, stamp in zip(frames, [100.0, 100.1, 100.2], strict=True):
        before = len(odometry)
        stereo_rig.publish(frame, stamp)
        assert wait_for(lambda b=before: len(odometry) >= b + 2, timeout=120)  # both nodes
    assert _call(remote, "/slam_mobilenet/save_map").success
    response = _call(remote, "/slam_resnet/load_map")
    assert not response.success and "model" in response.message
