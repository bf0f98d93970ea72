"""descriptor_node with real rclpy: images in, 32FC<D> / 16FC<D> descriptors (the network's own resolution, or
upsampled to max_output_side) and bgr8 viz out; lifecycle; bad input."""

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_srvs.srv import SetBool

from dense_descriptors_ros.io.image_conversion import image_to_numpy, numpy_to_image
from dense_descriptors_ros.model.checkpoint import save_checkpoint
from dense_descriptors_ros.model.engine import image_to_tensor
from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig
from dense_descriptors_ros.nodes.descriptor_node import NETWORK_MS_KEY, DescriptorNode
from dense_descriptors_ros.nodes.in_process_graph import wait_for

pytestmark = pytest.mark.ros


def _image(stamp_sec: int, h: int = 48, w: int = 64, encoding: str = "rgb8") -> Image:
    rng = np.random.default_rng(stamp_sec)
    msg = numpy_to_image(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), encoding)
    msg.header.stamp = Time(sec=stamp_sec, nanosec=123)
    msg.header.frame_id = "camera_optical"
    return msg


@pytest.fixture
def model_dir(tmp_path):
    net = DescriptorNet(ModelConfig(backbone="mobilenet_v2", descriptor_dim=8, pretrained=False))
    return save_checkpoint(tmp_path / "model", net, {"test": True})


@pytest.fixture
def stride4_model_dir(tmp_path):
    net = DescriptorNet(ModelConfig(backbone="mobilenet_v2", descriptor_dim=8, output_stride=4, pretrained=False))
    return save_checkpoint(tmp_path / "stride4", net)


def _start(ros, model_dir, **params):
    overrides = [Parameter("model_dir", value=str(model_dir)), Parameter("image_qos", value="reliable")]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    node = ros.add(DescriptorNode(context=ros.context, parameter_overrides=overrides))
    return node


def _connected_camera(ros, node, node_publisher):
    """A publisher on image, once it reaches the node and the node's descriptors reach the test's subscriber (the
    node computes descriptors only while somebody subscribes)."""
    pub = ros.node("camera").create_publisher(
        Image, "image", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    )
    descriptors = node_publisher(node, "descriptors")
    assert wait_for(lambda: pub.get_subscription_count() > 0 and descriptors.get_subscription_count() > 0)
    return pub


def test_descriptors_and_viz_match_input(ros, model_dir, lifecycle_state, node_publisher):
    node = _start(ros, model_dir)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    node.trigger_activate()
    assert lifecycle_state(node) == "active"
    desc = ros.collector(Image, "descriptors")
    viz = ros.collector(Image, "descriptors/viz")
    pub = _connected_camera(ros, node, node_publisher)
    sent = _image(7)
    assert wait_for(lambda: (pub.publish(sent) or True) and desc and viz, timeout=30, period=0.5)
    out = desc[-1]
    assert out.encoding == "32FC8"
    assert (out.height, out.width) == (48, 64)
    assert out.header.stamp.sec == 7 and out.header.stamp.nanosec == 123
    assert out.header.frame_id == "camera_optical"
    values = image_to_numpy(out)
    assert values.shape == (48, 64, 8)
    np.testing.assert_allclose(np.linalg.norm(values, axis=-1), 1.0, atol=1e-4)
    assert viz[-1].encoding == "bgr8" and viz[-1].header.stamp.sec == 7
    assert float(node.diagnostic_values()[NETWORK_MS_KEY]) > 0  # the network's own time, on /diagnostics


def test_bad_images_are_counted_and_node_keeps_running(ros, model_dir, node_publisher):
    node = _start(ros, model_dir)
    node.trigger_configure()
    node.trigger_activate()
    desc = ros.collector(Image, "descriptors")
    pub = _connected_camera(ros, node, node_publisher)
    bad_encoding = _image(1)
    bad_encoding.encoding = "yuv422_weird"
    empty = Image(encoding="rgb8", height=0, width=0, step=0)
    truncated = _image(2)
    truncated.data = bytes(truncated.data)[:100]
    # One at a time: the node keeps only the newest frame, so a bad frame sent while the last one is still being
    # looked at may be superseded (counted as dropped, not as a problem).
    for count, msg in enumerate((bad_encoding, empty, truncated), start=1):
        pub.publish(msg)
        assert wait_for(lambda n=count: node.problems.total >= n, timeout=10), node.problems.counts
    good = _image(3)
    assert wait_for(lambda: (pub.publish(good) or True) and desc, timeout=30, period=0.5)
    assert desc[-1].header.stamp.sec == 3
    assert node.worker.counts.failed == 0


def test_non_finite_descriptors_are_counted_not_published(ros, model_dir, node_publisher):
    """A network that turns NaN after it was checked at load (here one weight, set while running): the frame is
    counted as bad input and nothing is published; the next good network output goes out again."""
    node = _start(ros, model_dir, runtime="torch")  # its weights are the module's, so the test can change one
    node.trigger_configure()
    node.trigger_activate()
    desc = ros.collector(Image, "descriptors")
    pub = _connected_camera(ros, node, node_publisher)
    weight = next(node.engine.net.parameters()).data  # the first convolution's: a NaN reaches every descriptor
    kept = weight.flatten()[0].item()
    weight.view(-1)[0] = float("nan")
    pub.publish(_image(8))
    assert wait_for(lambda: node.problems.counts["non-finite descriptors"] == 1, timeout=30)
    node.worker.wait_idle(5)
    assert desc == []
    weight.view(-1)[0] = kept
    assert wait_for(lambda: (pub.publish(_image(9)) or True) and desc, timeout=30, period=0.5)
    assert np.isfinite(image_to_numpy(desc[-1])).all()


def test_lifecycle_transitions_release_model(ros, model_dir, lifecycle_state):
    node = _start(ros, model_dir)
    node.trigger_configure()
    assert node.engine is None  # loaded on activate, not before
    node.trigger_activate()
    assert node.engine is not None and not node.engine.net.training
    node.trigger_deactivate()
    assert node.engine is None and list(node.subscriptions) == []
    assert lifecycle_state(node) == "inactive"
    node.trigger_activate()
    assert node.engine is not None
    node.trigger_deactivate()
    node.trigger_cleanup()
    assert lifecycle_state(node) == "unconfigured"


def test_missing_checkpoint_fails_configure_with_clear_message(ros, tmp_path, lifecycle_state):
    node = _start(ros, tmp_path / "nope")
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert lifecycle_state(node) == "unconfigured"


def test_enable_service_gates_processing(ros, model_dir, node_publisher):
    node = _start(ros, model_dir)
    node.trigger_configure()
    node.trigger_activate()
    desc = ros.collector(Image, "descriptors")
    client_node = ros.node("client")
    client = client_node.create_client(SetBool, "/descriptor_node/enable")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(SetBool.Request(data=False))
    assert wait_for(future.done, timeout=10)
    assert future.result().success and not node.enabled
    pub = _connected_camera(ros, node, node_publisher)
    pub.publish(_image(5))
    assert wait_for(lambda: node.worker.counts.received >= 1, timeout=10)
    node.worker.wait_idle(5)
    assert desc == []
    future = client.call_async(SetBool.Request(data=True))
    assert wait_for(future.done, timeout=10)
    assert wait_for(lambda: (pub.publish(_image(6)) or True) and desc, timeout=30, period=0.5)


def test_invalid_parameter_fails_configure_and_the_node_stays_up(ros, model_dir, lifecycle_state):
    node = _start(ros, model_dir, max_side=-3)
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert lifecycle_state(node) == "unconfigured"
    assert node.set_parameters([Parameter("max_side", value=320)])[0].successful
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS


@pytest.mark.parametrize(("encoding", "itemsize", "atol"), [("32FC", 4, 1e-6), ("16FC", 2, 1e-3)])
def test_descriptors_are_the_networks_own_map_in_either_encoding(
    ros, stride4_model_dir, node_publisher, encoding, itemsize, atol
):
    """max_output_side 0: one descriptor per 4x4 cell of the inference image, exactly the engine's coarse map."""
    node = _start(ros, stride4_model_dir, descriptor_encoding=encoding)
    node.trigger_configure()
    node.trigger_activate()
    desc = ros.collector(Image, "descriptors")
    viz = ros.collector(Image, "descriptors/viz")
    pub = _connected_camera(ros, node, node_publisher)
    sent = _image(11, h=50, w=64)  # 50 rows: the last row of cells covers 2 image rows (ceil(50 / 4) = 13)
    assert wait_for(lambda: (pub.publish(sent) or True) and desc and viz, timeout=30, period=0.5)
    out = desc[-1]
    assert (out.encoding, out.height, out.width, out.step) == (f"{encoding}8", 13, 16, 16 * 8 * itemsize)
    assert len(out.data) == 13 * 16 * 8 * itemsize and out.header.stamp.sec == 11
    values = image_to_numpy(out)
    assert values.dtype == np.float32 and values.shape == (13, 16, 8)
    expected = node.engine.compute_coarse_tensor(image_to_tensor(image_to_numpy(sent))[None])[0].permute(1, 2, 0)
    np.testing.assert_allclose(values, expected.numpy(), atol=atol)
    np.testing.assert_allclose(np.linalg.norm(values, axis=-1), 1.0, atol=10 * atol)
    assert (viz[-1].height, viz[-1].width) == (13, 16)


def test_max_output_side_upsamples_and_renormalises(ros, stride4_model_dir, node_publisher):
    node = _start(ros, stride4_model_dir, max_output_side=32)
    node.trigger_configure()
    node.trigger_activate()
    desc = ros.collector(Image, "descriptors")
    pub = _connected_camera(ros, node, node_publisher)
    sent = _image(12)
    assert wait_for(lambda: (pub.publish(sent) or True) and desc, timeout=30, period=0.5)
    assert (desc[-1].encoding, desc[-1].height, desc[-1].width) == ("32FC8", 24, 32)
    values = image_to_numpy(desc[-1])
    np.testing.assert_allclose(values, node.engine.compute(image_to_numpy(sent), (24, 32)), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(values, axis=-1), 1.0, atol=1e-5)
