"""descriptor_node: camera image in, dense descriptor image (32FC<D> or 16FC<D>) and its colour visualisation out.

Lifecycle: parameters are read and checked on configure (publishers created), the model is loaded on
activate (subscription created, worker started) and released on deactivate. By default the node drives itself
to active at start-up (parameter ``autostart``).

Topics (relative, remap them): in ``image`` (sensor_msgs/Image, sensor-data QoS by default); out
``descriptors`` (sensor_msgs/Image 32FC<D> or 16FC<D>, ``descriptor_encoding``, same header as the input) and
``descriptors/viz`` (bgr8, fixed PCA colouring), each computed only while somebody subscribes. Both are at the
network's own output resolution by default: one descriptor per ``output_stride`` x ``output_stride`` cell of the
inference-size image (see ``compute_coarse_tensor`` for the cell centres), nothing upsampled; ``max_output_side``
asks for a larger image instead (bilinear upsampling + renormalisation). Services ``~/enable``
(std_srvs/SetBool), ``~/load_model`` (swaps the network while running, see descriptor_model_node.py).
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image

from dense_descriptors_ros.features.descriptor_image import all_finite
from dense_descriptors_ros.io.image_conversion import image_to_numpy, numpy_to_image, to_rgb8
from dense_descriptors_ros.model.descriptor_colors import DescriptorColorizer
from dense_descriptors_ros.model.descriptor_source import DescriptorSourceConfig
from dense_descriptors_ros.model.engine import fit_within, image_to_tensor
from dense_descriptors_ros.nodes.descriptor_model_node import DescriptorModelNode
from dense_descriptors_ros.nodes.frame_worker_node import FrameNodeConfig
from dense_descriptors_ros.nodes.node_main import run_node
from dense_descriptors_ros.nodes.qos_profiles import LARGE_OUT, qos_by_name

# descriptor_encoding -> the torch dtype the descriptors are converted to before they leave the engine's device.
ENCODING_DTYPES = {"32FC": torch.float32, "16FC": torch.float16}


@dataclass
class DescriptorNodeConfig(FrameNodeConfig, DescriptorSourceConfig):
    publish_viz: bool = field(default=True, metadata={"help": "publish descriptors/viz (bgr8 PCA colouring)"})
    max_output_side: int = field(
        default=0,
        metadata={
            "help": "0: publish the network's own output (one descriptor per output_stride pixels of the inference "
            "image, nothing upsampled); N: upsample to images whose longer side is N, at most the input's",
            "range": (0, 8192),
        },
    )
    descriptor_encoding: str = field(
        default="32FC",
        metadata={
            "help": "32FC: 32FC<D> float32; 16FC: 16FC<D> IEEE half floats (half the bytes, about 3 significant "
            "digits), a convention of this package that its nodes and image_to_numpy decode",
            "choices": tuple(ENCODING_DTYPES),
        },
    )


TIMED_FRAMES = 100
NETWORK_MS_KEY = f"network ms (median of the last {TIMED_FRAMES} frames)"


class DescriptorNode(DescriptorModelNode):
    CONFIG = DescriptorNodeConfig
    LIVE_PARAMETERS = DescriptorModelNode.LIVE_PARAMETERS | {"publish_viz", "max_output_side", "descriptor_encoding"}

    def __init__(self, node_name: str = "descriptor_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.colorizer = DescriptorColorizer()
        self._network_seconds: deque[float] = deque(maxlen=TIMED_FRAMES)

    def diagnostic_values(self) -> dict[str, Any]:
        values = super().diagnostic_values()
        if self._network_seconds:  # what the network alone takes, for telling it from the ROS side of a frame
            values[NETWORK_MS_KEY] = f"{1000 * statistics.median(self._network_seconds):.1f}"
        return values

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
        self._network_seconds.clear()  # another network, another time

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
        start = time.perf_counter()
        desc = self._network_output(rgb)
        # Right after an OpenVINO inference, torch.isfinite(desc).all() took 0.6-4 ms on the CPU, one sum 0.3-0.8
        # (README "Descriptor messages").
        if not all_finite(desc):
            self.problems.report("non-finite descriptors", "the network produced NaN/inf; check the checkpoint")
            return
        self._network_seconds.append(time.perf_counter() - start)  # the check above waited for a GPU to finish
        # The message's dtype on the engine's device (a GPU sends half the bytes for 16FC), then (1, D, h, w) ->
        # contiguous (h, w, D) in one numpy copy; its buffer is then copied once, into the message. numpy's copy is
        # single-threaded: torch's woke its thread pool, which competes with OpenVINO's still-spinning workers for the
        # cores (0.3-3 ms for the 32FC copy after an inference, numpy 0.15-0.7 ms).
        encoding = self.config.descriptor_encoding
        chw = desc[0].to(ENCODING_DTYPES[encoding]).cpu().numpy()
        descriptors = np.ascontiguousarray(chw.transpose(1, 2, 0))
        if want_desc:
            out = numpy_to_image(descriptors, f"{encoding}{descriptors.shape[-1]}")
            out.header = msg.header
            self._pubs["descriptors"].publish(out)
        if want_viz:
            viz = numpy_to_image(self.colorizer(descriptors), "bgr8")
            viz.header = msg.header
            self._pubs["viz"].publish(viz)

    def _network_output(self, rgb: np.ndarray) -> torch.Tensor:
        """(1, D, h, w) float32 unit-norm descriptors of ``rgb``: the network's own map, or, with max_output_side,
        upsampled to the input's size shrunk to max_output_side."""
        images = image_to_tensor(rgb)[None]
        if self.config.max_output_side:
            return self.engine.compute_tensor(images, fit_within(*rgb.shape[:2], self.config.max_output_side))
        return self.engine.compute_coarse_tensor(images)


def main(args: list[str] | None = None) -> None:
    run_node(DescriptorNode, args)


if __name__ == "__main__":
    main()
