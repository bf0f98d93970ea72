"""CPU runtimes (ONNX Runtime, OpenVINO) give PyTorch's descriptors; the auto choice, thread settings, graph cache."""

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from dense_descriptors_ros.model import runtimes
from dense_descriptors_ros.model.checkpoint import save_checkpoint
from dense_descriptors_ros.model.descriptor_source import DescriptorSourceConfig, open_engine
from dense_descriptors_ros.model.engine import DescriptorEngine
from dense_descriptors_ros.model.graph_cache import CACHE_FOLDER, cache_folder, graph_key
from dense_descriptors_ros.model.runtimes import choose_runtime, runtime_installed

CPU_RUNTIMES = ["onnxruntime", "openvino"]
CPU = torch.device("cpu")


@pytest.fixture
def nets(make_net):
    """An untrained MobileNetV2 encoder-decoder at stride 1 and a fused stride-4 network with a fine branch."""
    return {
        "mobilenet_v2_stride1": make_net(dim=8),
        "fused_stride4": make_net(
            architecture="fused", output_stride=4, semantic_taps=(4, 8, 16), semantic_dim=16, fine_dim=8, dim=24
        ),
    }


def exports(caplog) -> int:
    return sum("exported the network's ONNX graph" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("runtime", CPU_RUNTIMES)
def test_cpu_runtime_gives_torchs_descriptors_at_odd_sizes(runtime, nets):
    images = torch.rand(2, 3, 50, 70, generator=torch.Generator().manual_seed(1))
    frame = np.random.default_rng(2).integers(0, 256, (61, 83, 3), dtype=np.uint8)
    for name, net in nets.items():
        reference = DescriptorEngine(net, device="cpu", warmup=False)
        engine = DescriptorEngine(net, device="cpu", runtime=runtime, num_threads=2)
        assert engine.runtime == runtime and reference.runtime == "torch"
        coarse = engine.compute_coarse_tensor(images)
        assert coarse.dtype == torch.float32 and coarse.shape == reference.compute_coarse_tensor(images).shape, name
        torch.testing.assert_close(coarse, reference.compute_coarse_tensor(images), atol=1e-4, rtol=0, msg=name)
        np.testing.assert_allclose(engine.compute(frame), reference.compute(frame), atol=1e-4, err_msg=name)
        small = DescriptorEngine(net, device="cpu", runtime=runtime, max_side=40, warmup=False)
        np.testing.assert_allclose(
            small.compute(frame), DescriptorEngine(net, device="cpu", max_side=40).compute(frame), atol=1e-4
        )


def test_auto_picks_the_fastest_installed_cpu_runtime_and_torch_without_any(monkeypatch, make_net):
    assert choose_runtime("auto", torch.device("cuda")) == "torch"
    installed = {"torch", "onnxruntime", "openvino"}
    monkeypatch.setattr(runtimes, "runtime_installed", lambda name: name in installed)
    assert choose_runtime("auto", CPU) == "openvino"
    installed.discard("openvino")
    assert choose_runtime("auto", CPU) == "onnxruntime"
    installed.discard("onnxruntime")
    assert choose_runtime("auto", CPU) == "torch"
    assert DescriptorEngine(make_net(), device="cpu", runtime="auto", warmup=False).runtime == "torch"
    with pytest.raises(ValueError, match="'openvino' is not installed"):
        choose_runtime("openvino", CPU)
    with pytest.raises(ValueError, match="'onnxruntime' is not installed"):
        DescriptorSourceConfig(model_dir="untrained", runtime="onnxruntime", device="cpu").check_model()


def test_runtime_choice_rejects_what_cannot_work(make_net):
    with pytest.raises(ValueError, match="not one of"):
        choose_runtime("tensorrt", CPU)
    with pytest.raises(ValueError, match="runs on the CPU"):
        choose_runtime("onnxruntime", torch.device("cuda"))
    with pytest.raises(ValueError, match="num_threads"):
        DescriptorEngine(make_net(), device="cpu", num_threads=-1, warmup=False)
    with pytest.raises(ValueError, match="omp_wait_policy"):
        DescriptorEngine(make_net(), device="cpu", omp_wait_policy="spin", warmup=False)


def test_thread_count_and_wait_policy_reach_the_runtimes(make_net):
    net = make_net()
    for policy, spinning, pinned in (("passive", "0", False), ("active", "1", True)):
        ort = DescriptorEngine(net, device="cpu", runtime="onnxruntime", num_threads=2, omp_wait_policy=policy)
        options = ort.backend.session.get_session_options()
        assert options.intra_op_num_threads == 2
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == spinning
        ov = DescriptorEngine(net, device="cpu", runtime="openvino", num_threads=1, omp_wait_policy=policy)
        compiled = next(iter(ov.backend.requests.values())).get_compiled_model()
        assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
        assert compiled.get_property("ENABLE_CPU_PINNING") is pinned
        assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"


def test_descriptor_source_config_opens_the_runtime_it_names(make_net):
    config = DescriptorSourceConfig(model_dir="untrained", device="cpu", runtime="onnxruntime", num_threads=1)
    engine = open_engine(config)
    assert engine.runtime == "onnxruntime"
    assert engine.backend.session.get_session_options().intra_op_num_threads == 1


@pytest.mark.parametrize("runtime", CPU_RUNTIMES)
def test_graph_cache_next_to_the_checkpoint_is_reused_renewed_and_repaired(runtime, tmp_path, make_net, caplog):
    caplog.set_level(logging.INFO)
    folder = save_checkpoint(tmp_path / "model", make_net(dim=8))
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    first = DescriptorEngine.from_checkpoint(folder, device="cpu", runtime=runtime)
    (graph,) = (folder / CACHE_FOLDER).glob("*.onnx")
    assert exports(caplog) == 1
    stamp = graph.stat().st_mtime_ns
    second = DescriptorEngine.from_checkpoint(folder, device="cpu", runtime=runtime)
    assert exports(caplog) == 1 and graph.stat().st_mtime_ns == stamp  # the second start exports nothing
    np.testing.assert_allclose(second.compute(frame), first.compute(frame), atol=1e-6)

    graph.write_bytes(b"not an onnx graph" * 10)  # a corrupt cache file: exported again, with a warning
    caplog.clear()
    repaired = DescriptorEngine.from_checkpoint(folder, device="cpu", runtime=runtime)
    assert exports(caplog) == 1
    assert any(r.levelno == logging.WARNING and "does not load" in r.getMessage() for r in caplog.records)
    np.testing.assert_allclose(repaired.compute(frame), first.compute(frame), atol=1e-6)

    retrained = make_net(dim=8)
    with torch.no_grad():
        next(retrained.parameters()).add_(0.01)
    assert graph_key(retrained) != graph_key(make_net(dim=8)) == graph.stem.split("-")[-1]
    save_checkpoint(folder, retrained)
    DescriptorEngine.from_checkpoint(folder, device="cpu", runtime=runtime)
    assert len(list((folder / CACHE_FOLDER).glob("*.onnx"))) == 2  # changed weights: a new key, a new graph


def test_graph_cache_falls_back_to_the_user_cache(tmp_path, monkeypatch, runtime_cache):
    assert cache_folder(None) == runtime_cache  # DDR_CACHE_DIR, set by the root conftest
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / CACHE_FOLDER).write_text("a file where the cache folder would go")
    assert cache_folder(blocked) == runtime_cache
    monkeypatch.delenv("DDR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder(None) == tmp_path / "xdg" / "dense_descriptors_ros" / CACHE_FOLDER
    if os.geteuid() != 0:  # root may write anywhere
        readonly = tmp_path / "readonly"
        readonly.mkdir(mode=0o555)
        assert cache_folder(readonly) == tmp_path / "xdg" / "dense_descriptors_ros" / CACHE_FOLDER


def test_torch_says_when_it_cannot_take_the_wait_policy_asked_for(make_net, monkeypatch, caplog):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    with caplog.at_level(logging.WARNING):
        DescriptorEngine(make_net(), device="cpu", warmup=False)
        DescriptorEngine(make_net(), device="cpu", omp_wait_policy="passive", warmup=False)
        assert not caplog.records
        DescriptorEngine(make_net(), device="cpu", omp_wait_policy="active", warmup=False)
    assert "torch's OpenMP threads run with passive" in caplog.text


@pytest.mark.skipif(not runtime_installed("openvino"), reason="openvino is not installed")
def test_openvino_engine_can_be_shared_by_threads(make_net, tmp_path, monkeypatch):
    """A node's worker and another thread may call one engine at once: no 'Infer Request is busy', same results."""
    monkeypatch.setenv("DDR_CACHE_DIR", str(tmp_path))
    engine = DescriptorEngine(make_net(dim=8), device="cpu", runtime="openvino", warmup=False)
    images = torch.rand(1, 3, 48, 64)
    expected = engine.compute_coarse_tensor(images)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: engine.compute_coarse_tensor(images), range(16)))
    for result in results:
        torch.testing.assert_close(result, expected)
