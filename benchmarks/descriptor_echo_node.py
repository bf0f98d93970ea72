"""A bare stand-in for descriptor_node: answers each image with a ready-made descriptor message from its subscription
callback (no worker thread, no decoding, no network), stamped like the image, with descriptor_node's QoS. What the DDS
hops cost on their own: the floor of benchmarks/test_bench_messages.py, in its graph (:class:`Echo`) or in a process
of its own like a node started by ``ros2 run`` (``python benchmarks/descriptor_echo_node.py``)."""

from __future__ import annotations

import gc

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image

from dense_descriptors_ros.io.image_conversion import numpy_to_image
from dense_descriptors_ros.nodes.qos_profiles import LARGE_OUT, qos_by_name


class Echo:
    """On ``node``: every Image on ``image_topic`` is answered on ``reply_topic`` with ``reply`` when it is set, else
    with the message descriptor_node publishes by default for an image of that size (32FC32, one cell per 4x4
    pixels)."""

    def __init__(self, node: Node, image_topic: str = "image", reply_topic: str = "descriptors") -> None:
        self.reply: Image | None = None
        self._default_replies: dict[tuple[int, int], Image] = {}
        self.publisher = node.create_publisher(Image, reply_topic, LARGE_OUT)
        node.create_subscription(Image, image_topic, self._answer, qos_by_name("reliable"))

    def _answer(self, msg: Image) -> None:
        reply = self.reply or self._default_reply(msg.height, msg.width)
        reply.header = msg.header
        self.publisher.publish(reply)

    def _default_reply(self, height: int, width: int) -> Image:
        if (height, width) not in self._default_replies:
            cells = np.zeros((height // 4, width // 4, 32), np.float32)
            self._default_replies[height, width] = numpy_to_image(cells, "32FC32")
        return self._default_replies[height, width]


def main() -> None:
    rclpy.init()
    node = Node("descriptor_echo")
    Echo(node)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):  # Ctrl-C, or SIGTERM through rclpy's handler
        pass
    finally:
        # Nothing may hold the context when it shuts down, or Fast DDS leaves its shared-memory segment in /dev/shm
        # (see node_main.py).
        executor.shutdown()
        node.destroy_node()
        del executor, node
        gc.collect()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
