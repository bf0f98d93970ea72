"""descriptor_node: camera image in, dense descriptor image (32FC<D>) and its colour visualisation out.

Lifecycle: parameters are read and checked on configure (publishers created), the model is loaded on
activate (subscription created, worker started) and released on deactivate. By default the node drives itself
to active at start-up (parameter ``autostart``).

Topics (relative, remap them): in ``image`` (sensor_msgs/Image, sensor-data QoS by default); out
``descriptors`` (sensor_msgs/Image 32FC<D>, same header as the input) and ``descriptors/viz`` (bgr8, fixed PCA
colouring), both at the inference resolution (or ``max_output_side``) rather than the camera's, each computed only
while somebody subscribes. Services ``~/enable`` (std_srvs/SetBool), ``~/load_model`` (swaps the network while
running, see descriptor_model_node.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image

from dense_descriptors_ros.io.image_conversion import image_to_numpy, numpy_to_image, to_rgb8
from dense_descriptors_ros.model.descriptor_colors import DescriptorColorizer
from dense_descriptors_ros.model.descriptor_source import DescriptorSourceConfig
from dense_descriptors_ros.model.engine import fit_within
from dense_descriptors_ros.nodes.descriptor_model_node import DescriptorModelNode
from dense_descriptors_ros.nodes.frame_worker_node import FrameNodeConfig
from dense_descriptors_ros.nodes.node_main import run_node
from dense_descriptors_ros.nodes.qos_profiles import LARGE_OUT, qos_by_name


@dataclass
class DescriptorNodeConfig(FrameNodeConfig, DescriptorSourceConfig):
    publish_viz: bool = field(default=True, metadata={"help": "publish descriptors/viz (bgr8 PCA colouring)"})
    max_output_side: int = field(
        default=0,
        metadata={
            "help": "longer side of the published images (0 = the inference resolution, see max_side); at most the "
            "input's",
            "range": (0, 8192),
        },
    )


class DescriptorNode(DescriptorModelNode):
    CONFIG = DescriptorNodeConfig
    LIVE_PARAMETERS = DescriptorModelNode.LIVE_PARAMETERS | {"publish_viz", "max_output_side"}

    def __init__(self, node_name: str = "descriptor_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.colorizer = DescriptorColorizer()

    def make_publishers(self) -> dict[str, Any]:
        return {
            "descriptors": self.create_publisher(Image, "descriptors", LARGE_OUT),
            "viz": self.create_publisher(Image, "descriptors/viz", LARGE_OUT),
        }

    def acquire(self) -> None:
        super().acquire()
        self.colorizer = DescriptorColorizer()

    def model_swapped(self, old: str, new: str) -> None:
        self.colorizer = DescriptorColorizer()  # the PCA colouring of the old descriptor space does not fit

    def make_subscriptions(self) -> list:
        overrides = QoSOverridingOptions.with_default_policies()
        qos = qos_by_name(self.config.image_qos)
        return [self.create_subscription(Image, "image", self.receive, qos, qos_overriding_options=overrides)]

    def process(self, msg: Image) -> None:
        want_desc = self._pubs["descriptors"].get_subscription_count() > 0
        want_viz = self.config.publish_viz and self._pubs["viz"].get_subscription_count() > 0
        if not (want_desc or want_viz):
            return
        try:
            rgb = to_rgb8(image_to_numpy(msg, self.config.max_input_pixels))
        except ValueError as exc:
            self.problems.report_error(exc)
            return
        descriptors = self.engine.compute(rgb, self._output_size(*rgb.shape[:2]))
        if not np.isfinite(descriptors).all():
            self.problems.report("non-finite descriptors", "the network produced NaN/inf; check the checkpoint")
            return
        if want_desc:
            out = numpy_to_image(descriptors, f"32FC{descriptors.shape[-1]}")
            out.header = msg.header
            self._pubs["descriptors"].publish(out)
        if want_viz:
            viz = numpy_to_image(self.colorizer(descriptors), "bgr8")
            viz.header = msg.header
            self._pubs["viz"].publish(viz)

    def _output_size(self, height: int, width: int) -> tuple[int, int]:
        """The inference resolution, or the input's size shrunk to max_output_side."""
        if self.config.max_output_side:
            return fit_within(height, width, self.config.max_output_side)
        return self.engine.inference_size(height, width)


def main(args: list[str] | None = None) -> None:
    run_node(DescriptorNode, args)


if __name__ == "__main__":
    main()
