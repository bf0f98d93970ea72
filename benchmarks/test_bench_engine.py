"""Engine speed per backbone next to OpenCV ORB and SIFT on the same frames, and the ROS overhead of the node.

Run: `make bench` or `bash scripts/run_tests.sh -m bench -s benchmarks/test_bench_engine.py`.
Prints one JSON line: frames per second per backbone and resolution, ORB/SIFT detect+compute fps, and the
descriptor node's image-in -> descriptors-out latency minus raw inference time.

On a CUDA machine ``test_engine_speed_on_gpu`` adds fp32 and fp16 (channels_last, as the engine runs on CUDA) at
batch 1 and 8 for every backbone and the object.yaml fused network; with ``DDR_BENCH_JSON_DIR`` set each test also
writes its figures to ``engine_<cpu|gpu>.json`` there (scripts/gpu_check.sh does).
"""

import json
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import cv2
import pytest
import torch
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from dense_descriptors_ros.io.image_conversion import numpy_to_image
from dense_descriptors_ros.learning.recipe import load_train_config
from dense_descriptors_ros.model.backbones import BACKBONES
from dense_descriptors_ros.model.checkpoint import save_checkpoint
from dense_descriptors_ros.model.engine import DescriptorEngine
from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig
from dense_descriptors_ros.nodes.descriptor_node import DescriptorNode
from dense_descriptors_ros.nodes.in_process_graph import wait_for
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video

pytestmark = pytest.mark.bench
SIZES = {"320x240": (240, 320), "640x480": (480, 640)}
REPEATS = 5
GPU_BATCHES = (1, 8)
GPU_REPEATS = 20
OBJECT_RECIPE = Path(__file__).resolve().parents[1] / "training" / "object.yaml"


def _write_figures(name: str, figures: dict) -> None:
    """Also write the figures to $DDR_BENCH_JSON_DIR/<name>.json when that is set."""
    folder = os.environ.get("DDR_BENCH_JSON_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.json").write_text(json.dumps(figures, indent=1))


def _fps(fn, frames) -> float:
    fn(frames[0])  # warm-up
    times = []
    for frame in frames[:REPEATS]:
        start = time.perf_counter()
        fn(frame)
        times.append(time.perf_counter() - start)
    return 1.0 / statistics.median(times)


def test_engine_and_node_speed(ros, tmp_path, node_publisher):
    figures = {"date": time.strftime("%Y-%m-%d"), "cpu": platform.processor() or platform.machine()}
    figures["torch_threads"] = torch.get_num_threads()
    figures["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    for size_name, (h, w) in SIZES.items():
        frames = textured_object_video(REPEATS + 1, h, w, seed=1).frames
        grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        orb = cv2.ORB_create(nfeatures=1000)
        sift = cv2.SIFT_create(nfeatures=1000)
        figures[f"orb_fps_{size_name}"] = round(_fps(lambda g, d=orb: d.detectAndCompute(g, None), grey), 1)
        figures[f"sift_fps_{size_name}"] = round(_fps(lambda g, d=sift: d.detectAndCompute(g, None), grey), 1)
        for backbone in BACKBONES:
            engine = DescriptorEngine(DescriptorNet(ModelConfig(backbone=backbone, pretrained=False)), max_side=0)
            figures[f"{backbone}_fps_{size_name}"] = round(_fps(engine.compute, frames), 2)

    # ROS overhead: image published -> descriptors received, minus the engine's own time on the same frame.
    h, w = SIZES["320x240"]
    model = save_checkpoint(tmp_path / "m", DescriptorNet(ModelConfig(pretrained=False)))
    node = ros.add(
        DescriptorNode(
            context=ros.context,
            parameter_overrides=[
                Parameter("model_dir", value=str(model)),
                Parameter("image_qos", value="reliable"),
                Parameter("publish_viz", value=False),
            ],
        )
    )
    node.trigger_configure()
    node.trigger_activate()
    received = ros.collector(Image, "descriptors")
    pub = ros.node("camera").create_publisher(
        Image, "image", QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    )
    descriptors = node_publisher(node, "descriptors")
    assert wait_for(lambda: pub.get_subscription_count() > 0 and descriptors.get_subscription_count() > 0)
    frame = textured_object_video(1, h, w).frames[0]
    # Interleave the two measurements so load from other processes hits both alike.
    raw, latencies = [], []
    for i in range(REPEATS + 1):
        start = time.perf_counter()
        node.engine.compute(frame)
        raw.append(time.perf_counter() - start)
        msg = numpy_to_image(frame, "rgb8")
        msg.header.stamp.sec = 1000 + i
        start = time.perf_counter()
        pub.publish(msg)
        assert wait_for(lambda i=i: any(m.header.stamp.sec == 1000 + i for m in received), timeout=60, period=0.001)
        latencies.append(time.perf_counter() - start)
    raw, latencies = raw[1:], latencies[1:]
    latency = statistics.median(latencies)
    figures["node_latency_ms_320x240"] = round(1000 * latency, 1)
    figures["node_inference_ms_320x240"] = round(1000 * statistics.median(raw), 1)
    figures["node_ros_overhead_ms_320x240"] = round(1000 * (latency - statistics.median(raw)), 1)
    print(json.dumps({"benchmark": "engine", **figures}))
    _write_figures("engine_cpu", figures)
    assert figures["mobilenet_v2_fps_320x240"] > 0


def _gpu_fps(engine: DescriptorEngine, batch: torch.Tensor) -> float:
    """Images per second of ``engine.compute_tensor`` on a batch already on the GPU (median of GPU_REPEATS)."""
    engine.compute_tensor(batch)  # warm-up at this size (cuDNN picks its kernels)
    times = []
    for _ in range(GPU_REPEATS):
        torch.cuda.synchronize()
        start = time.perf_counter()
        engine.compute_tensor(batch)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return batch.shape[0] / statistics.median(times)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_engine_speed_on_gpu():
    figures = {"date": time.strftime("%Y-%m-%d"), "device": torch.cuda.get_device_name(0)}
    figures["torch"] = torch.__version__
    fused = replace(load_train_config(OBJECT_RECIPE).model, pretrained=False)
    models = {b: ModelConfig(backbone=b, pretrained=False) for b in BACKBONES} | {"fused_object": fused}
    for size_name, (h, w) in SIZES.items():
        frames = textured_object_video(max(GPU_BATCHES), h, w, seed=1).frames
        images = torch.stack([torch.from_numpy(f).permute(2, 0, 1) for f in frames]).float().div(255).cuda()
        for name, config in models.items():
            for precision, half in (("fp32", False), ("fp16", True)):
                engine = DescriptorEngine(DescriptorNet(config), device="cuda", half=half)
                for batch in GPU_BATCHES:
                    key = f"{name}_{precision}_b{batch}_fps_{size_name}"
                    figures[key] = round(_gpu_fps(engine, images[:batch]), 1)
                del engine
                torch.cuda.empty_cache()
    figures["max_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    print(json.dumps({"benchmark": "engine_gpu", **figures}))
    _write_figures("engine_gpu", figures)
    assert figures["mobilenet_v2_fp16_b8_fps_320x240"] > 0
