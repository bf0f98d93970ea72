"""A bare stand-in for descriptor_node in its own process: answers each image on ``image`` with a ready-made
``descriptors`` message of the size descriptor_node publishes by default (32FC32, one cell per 4x4 pixels), from its
subscription callback, spun like node_main spins a node. What two DDS hops between processes cost, without a network.
Run by benchmarks/test_bench_messages.py: ``python benchmarks/descriptor_echo_node.py``."""

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from dense_descriptors_ros.io.image_conversion import numpy_to_image


def main() -> None:
    rclpy.init()
    node = Node("descriptor_echo")
    replies: dict[tuple[int, int], Image] = {}
    publisher = node.create_publisher(Image, "descriptors", QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))

    def answer(msg: Image) -> None:
        size = (msg.height, msg.width)
        if size not in replies:
            replies[size] = numpy_to_image(np.zeros((msg.height // 4, msg.width // 4, 32), np.float32), "32FC32")
        reply = replies[size]
        reply.header = msg.header
        publisher.publish(reply)

    node.create_subscription(Image, "image", answer, QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
