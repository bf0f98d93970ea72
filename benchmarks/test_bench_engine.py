"""Engine speed per runtime and model next to OpenCV ORB and SIFT on the same frames (the node's ROS
overhead is benchmarks/test_bench_messages.py).

Run: `make bench` or `bash scripts/run_tests.sh -m bench -s benchmarks/test_bench_engine.py`.
Prints one JSON line. ``engine``: frames per second of the network (``DescriptorEngine.compute_coarse_tensor`` on a
uint8 frame: conversion, network, its own stride-s map) per runtime (torch, onnxruntime, openvino; 2 threads) and
model (the out-of-the-box fused stride-4 model, and the old full-resolution MobileNetV2 DescriptorNet at stride 1,
untrained: speed does not depend on the weights) at 320x240 and 640x480, next to ORB and SIFT detect+compute
(1000 features) on the same frames (TUM fr2/desk from $DDR_DATA_DIR and rendered sprite frames), each also as a
ratio to SIFT from the same condition; all methods take turns on each frame, so load hits them alike. Conditions:
quiet and under a competing load (a second process busy-looping on one core), each with OMP wait policy passive
and active; every condition runs in a fresh process, because torch reads OMP_WAIT_POLICY only when it is imported.
``<model>_<runtime>_compute`` adds ``DescriptorEngine.compute`` (descriptors upsampled to the full image, numpy)
for the default runtime and model.

On a CUDA machine ``test_engine_speed_on_gpu`` adds fp32 and fp16 (channels_last, as the engine runs on CUDA) at
batch 1 and 8 for every backbone and the object.yaml fused network; with ``DDR_BENCH_JSON_DIR`` set each test also
writes its figures to ``engine_<cpu|gpu>.json`` there (scripts/gpu_check.sh does).
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dense_descriptors_ros.evaluation.real_datasets import read_rgb
from dense_descriptors_ros.learning.recipe import load_train_config
from dense_descriptors_ros.model.backbones import BACKBONES
from dense_descriptors_ros.model.engine import DescriptorEngine, image_to_tensor
from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig
from dense_descriptors_ros.model.pretrained import pretrained_network
from dense_descriptors_ros.model.runtimes import choose_runtime
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video

pytestmark = pytest.mark.bench
SIZES = {"320x240": (240, 320), "640x480": (480, 640)}
REPEATS = 5
TUM_FRAMES = 4  # timed frames per size: these TUM frames, then rendered ones up to REPEATS + 1 (one warms up)
ROUNDS = 1
THREADS = 2
RUNTIMES = ("torch", "onnxruntime", "openvino")
MODELS = ("pretrained_fused_s4", "mobilenet_v2_s1")
CONDITIONS = {"quiet_passive": (False, "passive"), "quiet_active": (False, "active")} | {
    "load_passive": (True, "passive"),
    "load_active": (True, "active"),
}
GPU_BATCHES = (1, 8)
GPU_REPEATS = 20
OBJECT_RECIPE = Path(__file__).resolve().parents[1] / "training" / "object.yaml"
REPO = Path(__file__).resolve().parents[1]


def _write_figures(name: str, figures: dict) -> None:
    """Also write the figures to $DDR_BENCH_JSON_DIR/<name>.json when that is set."""
    folder = os.environ.get("DDR_BENCH_JSON_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.json").write_text(json.dumps(figures, indent=1))


def _frames(tum_dir: Path, height: int, width: int) -> list[np.ndarray]:
    """TUM frames resized to (height, width), then rendered sprite frames: REPEATS + 1 RGB frames."""
    tum = [read_rgb(p) for p in sorted((tum_dir / "rgb").glob("*.png"))[: TUM_FRAMES + 1]]
    tum = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in tum]
    return tum + textured_object_video(REPEATS - TUM_FRAMES, height, width, seed=1).frames


def _model(name: str) -> DescriptorNet:
    if name == "pretrained_fused_s4":
        return pretrained_network()
    return DescriptorNet(ModelConfig(backbone="mobilenet_v2", output_stride=1, pretrained=False)).eval()


def _interleaved_fps(methods: dict, frames: list) -> dict[str, float]:
    """Frames per second of each ``methods[name](frame)``: one warm-up call each, then ROUNDS passes over ``frames``
    taking every method in turn on each frame, so load from other processes hits all of them alike; median time."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for fn in methods.values():
        fn(frames[0])
    for _ in range(ROUNDS):
        for frame in frames[1:]:
            for name, fn in methods.items():
                start = time.perf_counter()
                fn(frame)
                times[name].append(time.perf_counter() - start)
    return {name: 1.0 / statistics.median(t) for name, t in times.items()}


def measure_condition(tum_dir: str, policy: str) -> dict:
    """One condition's figures (runs in its own process, see test_engine_speed)."""
    figures: dict = {"torch_omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    default_runtime = choose_runtime("auto", torch.device("cpu"))
    nets = {model: _model(model) for model in MODELS}
    for size_name, (h, w) in SIZES.items():
        frames = _frames(Path(tum_dir), h, w)
        orb = cv2.ORB_create(nfeatures=1000)
        sift = cv2.SIFT_create(nfeatures=1000)
        methods = {
            "orb": lambda f, d=orb: d.detectAndCompute(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), None),
            "sift": lambda f, d=sift: d.detectAndCompute(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), None),
        }
        for model, net in nets.items():
            for runtime in RUNTIMES:
                engine = DescriptorEngine(
                    net, device="cpu", runtime=runtime, num_threads=THREADS, omp_wait_policy=policy
                )
                methods[f"{model}_{runtime}"] = lambda f, e=engine: e.compute_coarse_tensor(image_to_tensor(f)[None])
                if model == MODELS[0] and runtime == default_runtime:
                    methods[f"{model}_{runtime}_compute"] = engine.compute
        fps = _interleaved_fps(methods, frames)
        figures[size_name] = {name: round(v, 2) for name, v in fps.items()} | {
            f"{name}_to_sift": round(v / fps["sift"], 2) for name, v in fps.items() if name != "sift"
        }
    return figures


def _run_condition(tum_dir: Path, load: bool, policy: str) -> dict:
    """``measure_condition`` in a fresh process with OMP_WAIT_POLICY=policy, beside a busy-looping process if
    ``load``."""
    env = os.environ | {"OMP_WAIT_POLICY": policy.upper(), "PYTHONPATH": str(REPO)}
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load else None
    try:
        result = subprocess.run(
            [sys.executable, __file__, str(tum_dir), policy], env=env, capture_output=True, text=True, timeout=1800
        )
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    assert result.returncode == 0, result.stderr[-3000:]
    print(result.stdout.strip().splitlines()[-1], file=sys.stderr, flush=True)  # progress: one condition done
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(3600)  # four conditions in fresh processes, minutes each on a loaded 2-core machine
def test_engine_speed(shared_dataset):
    figures = {"date": time.strftime("%Y-%m-%d"), "cpu": platform.processor() or platform.machine()}
    figures["threads"] = THREADS
    figures["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    figures["loadavg_before"] = Path("/proc/loadavg").read_text().split()[:3]
    tum_dir = shared_dataset("tum_fr2_desk")
    figures["engine"] = {name: _run_condition(tum_dir, *condition) for name, condition in CONDITIONS.items()}
    figures["loadavg_after_engine"] = Path("/proc/loadavg").read_text().split()[:3]

    print(json.dumps({"benchmark": "engine", **figures}))
    _write_figures("engine_cpu", figures)
    assert all(fps > 0 for fps in figures["engine"]["quiet_passive"]["320x240"].values())


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


if __name__ == "__main__":  # one condition of test_engine_speed: python test_bench_engine.py TUM_DIR POLICY
    print(json.dumps(measure_condition(sys.argv[1], sys.argv[2])))
