"""`dense-descriptors demo`: the main job on a generated default sequence, end to end through real ROS 2 nodes.

A textured object moving over a textured background is generated, played as sensor_msgs/Image messages into the
real descriptor node (rclpy, in this process), and the node's ``descriptors/viz`` output is written to PNG files
with an overview sheet.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

log = logging.getLogger(__name__)


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_output", help="output folder")
    parser.add_argument("--frames", type=int, default=24, help="frames in the generated sequence")
    parser.add_argument("--model", default="", help="checkpoint folder (empty: untrained network)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated sequence")


def generate_object_sequence(n_frames: int, height: int = 240, width: int = 320, seed: int = 0) -> list[np.ndarray]:
    """A smooth random texture (background) with a differently textured disc moving and rotating over it."""
    rng = np.random.default_rng(seed)

    def texture(h: int, w: int, scale: int) -> np.ndarray:
        noise = rng.random((h // scale + 2, w // scale + 2, 3)).astype(np.float32)
        return (cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)

    background = texture(height, width, 16)
    radius = height // 4
    patch = texture(2 * radius, 2 * radius, 6)
    yy, xx = np.mgrid[-radius:radius, -radius:radius]
    disc = (xx**2 + yy**2) < radius**2
    frames = []
    for i in range(n_frames):
        t = i / max(1, n_frames - 1)
        angle = 90.0 * t
        rotated = cv2.warpAffine(patch, cv2.getRotationMatrix2D((radius, radius), angle, 1.0), (2 * radius, 2 * radius))
        cx = int(radius + t * (width - 2 * radius))
        cy = int(height / 2 + 0.2 * height * np.sin(2 * np.pi * t))
        frame = background.copy()
        region = frame[cy - radius : cy + radius, cx - radius : cx + radius]
        region[disc] = rotated[disc]
        frames.append(frame)
    return frames


def run_demo(args: argparse.Namespace) -> int:
    # Keep DDS traffic of the demo on this machine unless the user configured discovery.
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from dense_descriptors_ros.io.image_conversion import image_to_numpy, numpy_to_image
    from dense_descriptors_ros.nodes.descriptor_node import DescriptorNode

    out = Path(args.out)
    viz_dir = out / "descriptors_viz"
    viz_dir.mkdir(parents=True, exist_ok=True)
    frames = generate_object_sequence(args.frames, seed=args.seed)
    reliable = QoSProfile(depth=len(frames), reliability=ReliabilityPolicy.RELIABLE)

    rclpy.init()
    executor = MultiThreadedExecutor(num_threads=3)
    node = DescriptorNode(
        parameter_overrides=[Parameter("model_dir", value=args.model), Parameter("image_qos", value="reliable")]
    )
    node.trigger_configure()
    node.trigger_activate()
    if node.engine is None:
        raise ValueError(f"descriptor node did not activate (model_dir={args.model!r}); see the log above")
    io_node = rclpy.create_node("demo_player")
    received: dict[int, np.ndarray] = {}
    io_node.create_subscription(
        Image, "descriptors/viz", lambda m: received.__setitem__(m.header.stamp.sec, image_to_numpy(m)), reliable
    )
    publisher = io_node.create_publisher(Image, "image", reliable)
    executor.add_node(node)
    executor.add_node(io_node)
    try:
        deadline = time.monotonic() + 20
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        for index, frame in enumerate(tqdm(frames, desc="frames through descriptor_node", unit="frame")):
            msg = numpy_to_image(frame, "rgb8")
            msg.header.stamp.sec = index
            msg.header.frame_id = "camera_optical"
            publisher.publish(msg)
            # One frame at a time: the node keeps only the newest frame, and the demo wants every one.
            deadline = time.monotonic() + 60
            while index not in received and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.05)
    finally:
        node._release()
        executor.shutdown()
        node.destroy_node()
        io_node.destroy_node()
        rclpy.shutdown()

    for index, viz in received.items():
        side_by_side = np.hstack([frames[index], viz])
        cv2.imwrite(str(viz_dir / f"{index:04d}.png"), cv2.cvtColor(side_by_side, cv2.COLOR_RGB2BGR))
    picks = sorted(received)[:: max(1, len(received) // 4)][:4]
    if picks:
        sheet = np.vstack([np.hstack([frames[i], received[i]]) for i in picks])
        cv2.imwrite(str(out / "overview.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"\n{len(received)}/{len(frames)} frames went through descriptor_node")
    print(f"  descriptor colouring (image | descriptors): {viz_dir}/")
    print(f"  overview sheet:                            {out / 'overview.png'}")
    return 0 if len(received) == len(frames) else 1
