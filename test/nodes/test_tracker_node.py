"""tracker_node with real rclpy: frames (or 32FC / 16FC descriptor images, full-resolution or coarse) in, PointCloud2 /
MarkerArray / ImageMarker / annotated image out; services; bad input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PointStamped
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2
from std_srvs.srv import SetBool, Trigger
from visualization_msgs.msg import ImageMarker, Marker, MarkerArray

from dense_descriptors_ros.io.image_conversion import numpy_to_image
from dense_descriptors_ros.model.checkpoint import save_checkpoint
from dense_descriptors_ros.model.engine import DescriptorEngine
from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig, normalize_descriptors
from dense_descriptors_ros.nodes.in_process_graph import wait_for
from dense_descriptors_ros.nodes.messages.pointcloud import pointcloud2_to_array
from dense_descriptors_ros.nodes.tracker_node import TrackerNode, TrackerNodeConfig
from dense_descriptors_ros.synthetic.plane_video import SyntheticSequence, similarity_transform
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video
from dense_descriptors_ros.tracking.point_tracker import PointTracker
from dense_descriptors_ros.tracking.track_drawing import track_color

pytestmark = pytest.mark.ros
RELIABLE = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)


def _node(ros, **params):
    overrides = [Parameter("image_qos", value="reliable"), Parameter("stats_period", value=0.0)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    node = ros.add(TrackerNode(context=ros.context, parameter_overrides=overrides))
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    return node


def _send_and_wait(pub, msg, outputs, timeout=60):
    """Publish (again every few seconds, the first one may race discovery) until an output with its stamp arrives."""
    stamp = msg.header.stamp.sec

    def answered():
        return any(o.header.stamp.sec == stamp for o in outputs)

    for _ in range(int(timeout / 5)):
        pub.publish(msg)
        if wait_for(answered, timeout=5):
            return next(o for o in reversed(outputs) if o.header.stamp.sec == stamp)
    raise AssertionError(f"no output for the message stamped {stamp}")


def _stamped(msg, sec):
    msg.header.stamp = Time(sec=sec, nanosec=0)
    msg.header.frame_id = "camera_optical"
    return msg


def _oracle_sequence(frames=8):
    transforms = [similarity_transform(0.05 * t, 1.0, 3.0 * t, 1.5 * t, (48, 40)) for t in range(frames)]
    return SyntheticSequence(np.array(transforms), height=80, width=96, descriptor_dim=16, seed=2)


def _descriptor_message(descriptors, encoding="32FC", stride=1):
    """The descriptor image a descriptor_node publishes for a network of output stride ``stride``: one
    (renormalised) mean descriptor per stride x stride cell, as float32 (32FC) or float16 (16FC)."""
    if stride > 1:
        cells = F.avg_pool2d(torch.from_numpy(descriptors).permute(2, 0, 1)[None], stride)
        descriptors = normalize_descriptors(cells)[0].permute(1, 2, 0).numpy()
    dtype = np.float16 if encoding == "16FC" else np.float32
    return numpy_to_image(descriptors.astype(dtype), f"{encoding}{descriptors.shape[-1]}")


@pytest.mark.parametrize(
    ("encoding", "stride", "descriptor_stride"),
    [("32FC", 1, 1), ("16FC", 4, 0)],
    ids=["32FC-full-resolution", "16FC-coarse-stride-of-the-out-of-the-box-model"],
)
def test_descriptor_input_tracks_ground_truth_with_matching_stamps(ros, encoding, stride, descriptor_stride):
    """Queries and tracks are in pixels of the image the descriptors were computed from, whatever their stride."""
    seq = _oracle_sequence()
    queries = np.array([[30.0, 30.0], [60.0, 45.0], [45.0, 60.0]])
    _node(ros, input="descriptors", query_points=queries.ravel().tolist(), descriptor_stride=descriptor_stride)
    clouds = ros.collector(PointCloud2, "tracks")
    markers = ros.collector(MarkerArray, "tracks/markers")
    images = ros.collector(Image, "tracks/image")
    image_markers = ros.collector(ImageMarker, "tracks/image_marker")
    pub = ros.node("descriptor_source").create_publisher(Image, "descriptors", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)
    truth = seq.project(seq.texture_points(queries, 0))
    for t in range(len(seq)):
        _, desc = seq.frame(t)
        cloud = _send_and_wait(pub, _stamped(_descriptor_message(desc, encoding, stride), 100 + t), clouds)
        assert cloud.header.stamp.sec == 100 + t and cloud.header.frame_id == "camera_optical"
        points = pointcloud2_to_array(cloud)
        assert list(points["id"]) == [0, 1, 2]
        assert points["visible"].all()
        xy = np.stack([points["x"], points["y"]], axis=1)
        np.testing.assert_allclose(xy, truth[t], atol=1.0)
    # The three outputs travel separately: wait for the annotated image of the last frame itself.
    last = 100 + len(seq) - 1
    assert wait_for(lambda: markers and images and images[-1].header.stamp.sec == last, timeout=10)
    assert markers[-1].markers[0].type == Marker.POINTS and len(markers[-1].markers[0].points) == 3
    assert {m.id for m in markers[-1].markers[1:]} == {1, 2, 3}  # stable label ids = 1 + track id
    assert images[-1].encoding == "bgr8"
    # The ImageMarker is in pixels (no metric scale), one colour per track.
    assert wait_for(lambda: image_markers and image_markers[-1].header.stamp.sec == last, timeout=10)
    marker = image_markers[-1]
    assert marker.type == ImageMarker.POINTS and marker.header.frame_id == "camera_optical"
    np.testing.assert_allclose([(p.x, p.y) for p in marker.points], truth[-1], atol=1.0)
    expected_colors = [np.array(track_color(i)) / 255 for i in range(3)]
    np.testing.assert_allclose([(c.r, c.g, c.b) for c in marker.outline_colors], expected_colors, atol=1e-6)


@pytest.mark.parametrize("output_stride", [1, 4])
def test_image_input_runs_network_in_process_like_the_library(ros, tmp_path, output_stride):
    """The node is thin: its tracks equal DescriptorEngine + PointTracker run directly on the same frames (a
    stride-4 network's own map, read by the tracker at that stride)."""
    torch.manual_seed(0)
    net = DescriptorNet(ModelConfig(descriptor_dim=8, pretrained=False, output_stride=output_stride))
    model_dir = save_checkpoint(tmp_path / "model", net)
    video = textured_object_video(5, 96, 128, seed=3)
    ys, xs = np.nonzero(video.masks[0])
    pick = np.linspace(0, len(xs) - 1, 6).astype(int)
    queries = np.stack([xs[pick], ys[pick]], axis=1).astype(np.float64)
    node = _node(ros, input="image", query_points=queries.ravel().tolist(), model_dir=str(model_dir))
    clouds = ros.collector(PointCloud2, "tracks")
    pub = ros.node("camera").create_publisher(Image, "image", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)

    engine = DescriptorEngine.from_checkpoint(
        model_dir, device="cpu", max_side=node.config.max_side, runtime=node.engine.runtime
    )
    tracker = PointTracker(node.config.tracker_config())
    first, stride = engine.compute_map(video.frames[0])
    assert stride == output_stride
    tracker.add_queries(first, queries.astype(np.float32), stride)
    for t, frame in enumerate(video.frames):
        cloud = _send_and_wait(pub, _stamped(numpy_to_image(frame, "rgb8"), t), clouds)
        assert cloud.header.stamp.sec == t
        points = pointcloud2_to_array(cloud)
        if t:
            descriptors, stride = engine.compute_map(frame)
            tracker.update(descriptors, stride=stride)
        expected = tracker.frame()
        np.testing.assert_allclose(
            np.stack([points["x"], points["y"]], axis=1), expected.positions, atol=1e-3, err_msg=f"frame {t}"
        )
        np.testing.assert_array_equal(points["visible"].astype(bool), expected.visible)
    assert node.worker.counts.failed == 0


def test_queries_topic_reset_and_enable_services(ros):
    seq = _oracle_sequence(4)
    node = _node(ros, input="descriptors", descriptor_stride=1)
    clouds = ros.collector(PointCloud2, "tracks")
    markers = ros.collector(MarkerArray, "tracks/markers")
    helper = ros.node("operator")
    desc_pub = helper.create_publisher(Image, "descriptors", RELIABLE)
    query_pub = helper.create_publisher(PointStamped, "queries", RELIABLE)
    assert wait_for(lambda: desc_pub.get_subscription_count() > 0 and query_pub.get_subscription_count() > 0)

    cloud = _send_and_wait(desc_pub, _stamped(numpy_to_image(seq.frame(0)[1], "32FC16"), 1), clouds)
    assert cloud.width == 0  # no queries yet and auto_points = 0
    query_pub.publish(PointStamped(point=Point(x=40.0, y=30.0, z=0.0)))
    assert wait_for(lambda: node.pending_queries == 1, timeout=10)
    cloud = _send_and_wait(desc_pub, _stamped(numpy_to_image(seq.frame(1)[1], "32FC16"), 2), clouds)
    assert cloud.width == 1 and pointcloud2_to_array(cloud)["id"][0] == 0

    reset = helper.create_client(Trigger, "/tracker_node/reset")
    assert reset.wait_for_service(timeout_sec=10)
    future = reset.call_async(Trigger.Request())
    assert wait_for(future.done, timeout=10) and future.result().success
    n_markers = len(markers)
    cloud = _send_and_wait(desc_pub, _stamped(numpy_to_image(seq.frame(2)[1], "32FC16"), 3), clouds)
    assert cloud.width == 0
    assert wait_for(lambda: any(m.markers[0].action == Marker.DELETEALL for m in markers[n_markers:]), timeout=10)

    enable = helper.create_client(SetBool, "/tracker_node/enable")
    assert enable.wait_for_service(timeout_sec=10)
    future = enable.call_async(SetBool.Request(data=False))
    assert wait_for(future.done, timeout=10) and not node.enabled
    before = len(clouds)
    desc_pub.publish(_stamped(numpy_to_image(seq.frame(3)[1], "32FC16"), 4))
    assert wait_for(lambda: node.worker.counts.received >= 4, timeout=10)
    node.worker.wait_idle(5)
    assert len(clouds) == before


def test_bad_input_is_skipped_and_node_keeps_running(ros):
    seq = _oracle_sequence(2)
    node = _node(ros, input="descriptors", query_points=[40.0, 30.0, 500.0, 500.0], descriptor_stride=1)
    clouds = ros.collector(PointCloud2, "tracks")
    pub = ros.node("bad_source").create_publisher(Image, "descriptors", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)
    rgb = numpy_to_image(np.zeros((8, 8, 3), np.uint8), "rgb8")  # not a descriptor image
    nan = seq.frame(0)[1].copy()
    nan[3, 3, 0] = np.nan
    for msg in (rgb, numpy_to_image(nan, "32FC16")):
        pub.publish(_stamped(msg, 1))
        wait_for(lambda: node.problems.total >= 1, timeout=5)
        node.worker.wait_idle(5)
    assert wait_for(lambda: node.problems.total >= 2, timeout=10), node.problems.counts
    cloud = _send_and_wait(pub, _stamped(numpy_to_image(seq.frame(1)[1], "32FC16"), 2), clouds)
    assert cloud.width == 1  # the query outside the image was reported and dropped, the other one tracked
    assert node.problems.counts["query outside image"] == 1
    assert node.worker.counts.failed == 0


def test_image_marker_can_be_turned_off(ros):
    node = _node(ros, input="descriptors", image_marker=False)
    topics = {p.topic_name for p in node.publishers}
    assert node.resolve_topic_name("tracks") in topics
    assert node.resolve_topic_name("tracks/image_marker") not in topics


def test_odd_number_of_query_coordinates_fails_configure(ros):
    overrides = [Parameter("query_points", value=[1.0, 2.0, 3.0]), Parameter("input", value="descriptors")]
    node = ros.add(TrackerNode(context=ros.context, parameter_overrides=overrides))
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE


def test_descriptor_stride_0_is_the_output_stride_of_model_dir(tmp_path):
    """Read from model.yaml (no weights loaded); 4 for the out-of-the-box model, 1 for a full-resolution network."""
    stride2 = save_checkpoint(tmp_path / "s2", DescriptorNet(ModelConfig(output_stride=2, pretrained=False)))
    assert TrackerNodeConfig(input="descriptors").input_stride() == 4
    assert TrackerNodeConfig(input="descriptors", model_dir=str(stride2)).input_stride() == 2
    assert TrackerNodeConfig(input="descriptors", model_dir="untrained").input_stride() == 1
    assert TrackerNodeConfig(input="descriptors", model_dir=str(stride2), descriptor_stride=3).input_stride() == 3
    with pytest.raises(ValueError, match="checkpoint folder not found"):
        TrackerNodeConfig(input="descriptors", model_dir=str(tmp_path / "nope")).input_stride()
