"""descriptor_node: camera image in, dense descriptor image (32FC<D>) and its colour visualisation out.

Lifecycle: parameters are read and checked on configure (publishers created), the model is loaded on
activate (subscription created, worker started) and released on deactivate. By default the node drives itself
to active at start-up (parameter ``autostart``).

Topics (relative, remap them): in ``image`` (sensor_msgs/Image, sensor-data QoS by default); out
``descriptors`` (sensor_msgs/Image 32FC<D>, same header as the input) and ``descriptors/viz`` (bgr8, fixed PCA
colouring), each computed only while somebody subscribes. Service ``~/enable`` (std_srvs/SetBool).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image
from std_srvs.srv import SetBool

from dense_descriptors_ros.config import ConfigError
from dense_descriptors_ros.io.image_conversion import image_to_numpy, numpy_to_image, to_rgb8
from dense_descriptors_ros.model.descriptor_colors import DescriptorColorizer
from dense_descriptors_ros.model.descriptor_source import DescriptorSourceConfig, open_engine
from dense_descriptors_ros.nodes.input_problems import InputProblems
from dense_descriptors_ros.nodes.latest_frame_worker import LatestFrameWorker
from dense_descriptors_ros.nodes.qos_profiles import QOS_NAMES, RELIABLE_OUT, qos_by_name
from dense_descriptors_ros.nodes.ros_parameters import declare_config_parameters, read_config_parameters


@dataclass
class DescriptorNodeConfig(DescriptorSourceConfig):
    publish_viz: bool = field(default=True, metadata={"help": "publish descriptors/viz (bgr8 PCA colouring)"})
    image_qos: str = field(
        default="sensor_data", metadata={"help": "QoS of the image subscription", "choices": QOS_NAMES}
    )
    autostart: bool = field(default=True, metadata={"help": "configure and activate the lifecycle node at start-up"})


class DescriptorNode(LifecycleNode):
    def __init__(self, node_name: str = "descriptor_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_config_parameters(self, DescriptorNodeConfig)
        self.config: DescriptorNodeConfig | None = None
        self.engine = None
        self.colorizer = DescriptorColorizer()
        self.problems = InputProblems(self.get_logger())
        self.worker = LatestFrameWorker(self._process, self._on_worker_error, name="descriptor-worker")
        self.enabled = True
        self._sub = None
        self._desc_pub = None
        self._viz_pub = None
        self.create_service(SetBool, "~/enable", self._on_enable)

    # --- lifecycle -------------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.config = read_config_parameters(self, DescriptorNodeConfig)
            self.config.check_model()
        except (ConfigError, ValueError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._desc_pub = self.create_publisher(Image, "descriptors", RELIABLE_OUT)
        self._viz_pub = self.create_publisher(Image, "descriptors/viz", RELIABLE_OUT)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.engine = open_engine(self.config, self.get_logger())
        except (ValueError, RuntimeError) as exc:
            self.get_logger().error(f"activate failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.colorizer = DescriptorColorizer()
        self._sub = self.create_subscription(
            Image,
            "image",
            self.worker.put,
            qos_by_name(self.config.image_qos),
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
        )
        self.worker.start()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        for pub in (self._desc_pub, self._viz_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        self._desc_pub = self._viz_pub = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self.worker.stop()
        if self._sub is not None:
            self.destroy_subscription(self._sub)
            self._sub = None
        if self.engine is not None:
            self.engine = None
            gc.collect()
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    # --- work ------------------------------------------------------------------------------------------------
    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.enabled = bool(request.data)
        response.success = True
        response.message = "enabled" if self.enabled else "disabled"
        return response

    def _on_worker_error(self, exc: BaseException) -> None:
        self.problems.report(type(exc).__name__, str(exc))

    def _process(self, msg: Image) -> None:
        if not self.enabled or self.engine is None:
            return
        want_desc = self._desc_pub.get_subscription_count() > 0
        want_viz = self.config.publish_viz and self._viz_pub.get_subscription_count() > 0
        if not (want_desc or want_viz):
            return
        try:
            rgb = to_rgb8(image_to_numpy(msg))
        except ValueError as exc:
            self.problems.report(f"bad image ({msg.encoding})", str(exc))
            return
        descriptors = self.engine.compute(rgb)
        if not np.isfinite(descriptors).all():
            self.problems.report("non-finite descriptors", "the network produced NaN/inf; check the checkpoint")
            return
        if want_desc:
            out = numpy_to_image(descriptors, f"32FC{descriptors.shape[-1]}")
            out.header = msg.header
            self._desc_pub.publish(out)
        if want_viz:
            viz = numpy_to_image(self.colorizer(descriptors), "bgr8")
            viz.header = msg.header
            self._viz_pub.publish(viz)


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = DescriptorNode()
    try:
        if node.get_parameter("autostart").value:
            node.trigger_configure()
            node.trigger_activate()
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node._release()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()
