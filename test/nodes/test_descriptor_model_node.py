"""The model nodes' runtime parameters (model/runtimes.py) with real rclpy: a CPU runtime gives torch's descriptors."""

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from dense_descriptors_ros.io.image_conversion import image_to_numpy, numpy_to_image
from dense_descriptors_ros.model.checkpoint import save_checkpoint
from dense_descriptors_ros.model.engine import DescriptorEngine
from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig
from dense_descriptors_ros.nodes.descriptor_node import DescriptorNode
from dense_descriptors_ros.nodes.in_process_graph import wait_for

pytestmark = pytest.mark.ros


def test_descriptor_node_on_onnxruntime_publishes_torchs_descriptors(ros, tmp_path, node_publisher):
    torch_net = DescriptorNet(ModelConfig(backbone="mobilenet_v2", descriptor_dim=8, pretrained=False))
    model_dir = save_checkpoint(tmp_path / "model", torch_net)
    overrides = {
        "model_dir": str(model_dir),
        "image_qos": "reliable",
        "publish_viz": False,
        "runtime": "onnxruntime",
        "num_threads": 1,
        "omp_wait_policy": "passive",
    }
    node = ros.add(
        DescriptorNode(context=ros.context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    )
    described = node.describe_parameter("runtime")
    assert "onnxruntime" in described.description and "openvino" in described.description
    assert not node.set_parameters([Parameter("runtime", value="tensorrt")])[0].successful
    assert not node.set_parameters([Parameter("omp_wait_policy", value="spin")])[0].successful
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    node.trigger_activate()
    assert node.engine.runtime == "onnxruntime"
    assert (model_dir / "runtime_cache").is_dir()

    received = ros.collector(Image, "descriptors")
    pub = ros.node("camera").create_publisher(
        Image, "image", QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    )
    descriptors = node_publisher(node, "descriptors")
    assert wait_for(lambda: pub.get_subscription_count() > 0 and descriptors.get_subscription_count() > 0)
    frame = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    msg = numpy_to_image(frame, "rgb8")
    msg.header.stamp = Time(sec=7)
    pub.publish(msg)
    assert wait_for(lambda: len(received) > 0, timeout=30)
    expected = DescriptorEngine.from_checkpoint(model_dir, device="cpu").compute(frame)
    np.testing.assert_allclose(image_to_numpy(received[0]), expected, atol=1e-4)
