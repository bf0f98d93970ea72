"""A bad parameter or model file at start-up: one clear error line naming it, the node stays up (unconfigured), and
once the parameter or file is fixed a `ros2 lifecycle set ... configure` / `activate` brings it up. Integers given
for float parameters are taken; a misspelled parameter name is warned about."""

import pytest
import yaml

from dense_descriptors_ros.model.checkpoint import META_FILE, save_checkpoint
from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig
from dense_descriptors_ros.nodes.in_process_graph import wait_for

pytestmark = pytest.mark.ros


@pytest.fixture
def checkpoints(tmp_path):
    """A good checkpoint and one whose model.yaml has a format_version this package does not read."""
    net = DescriptorNet(ModelConfig(descriptor_dim=8, pretrained=False))
    good = save_checkpoint(tmp_path / "good", net)
    future = save_checkpoint(tmp_path / "future", net)
    meta = yaml.safe_load((future / META_FILE).read_text())
    (future / META_FILE).write_text(yaml.safe_dump({**meta, "format_version": 2}))
    return good, future


def test_bad_parameters_and_files_leave_the_node_up_until_fixed(ros, start_node, remote, checkpoints, tmp_path):
    good, future = checkpoints
    # name: (executable, bad parameters, what the error must name, the fix)
    cases = {
        "bad_subpixel": ("tracker_node", {"subpixel": "bogus"}, "subpixel", {"subpixel": "parabola"}),
        "bad_patch": ("tracker_node", {"patch_size": 0}, "patch_size", {"patch_size": 5}),
        "bad_device": ("descriptor_node", {"device": "tpu"}, "tpu", {"device": "cpu"}),
        "missing_model": ("descriptor_node", {"model_dir": str(tmp_path / "nope")}, "nope", {"model_dir": str(good)}),
        "future_model": ("descriptor_node", {"model_dir": str(future)}, "format_version", None),
    }
    processes = {
        name: start_node(executable, {"device": "cpu", **params}, name)
        for name, (executable, params, _, _) in cases.items()
    }
    processes["int_for_float"] = start_node(
        "tracker_node", {"device": "cpu", "max_descriptor_distance": 1, "patch_sise": 7}, "int_for_float"
    )
    assert remote.wait_state("int_for_float", "active", processes["int_for_float"]), processes["int_for_float"].log()
    assert remote.get_parameter("int_for_float", "max_descriptor_distance") == 1.0
    assert wait_for(lambda: "patch_sise" in processes["int_for_float"].log(), timeout=10)

    for name, (_, _, named, fix) in cases.items():
        process = processes[name]
        assert remote.wait_state(name, "unconfigured", process), f"{name}:\n{process.log()}"
        assert wait_for(lambda p=process: "configure failed" in p.log(), timeout=20), process.log()
        assert process.alive(), process.log()
        errors = [line for line in process.log().splitlines() if "[ERROR]" in line]
        assert len(errors) == 1 and named in errors[0], f"{name}:\n{process.log()}"
        assert "Traceback" not in process.log()
        if fix is None:
            (future / META_FILE).write_text((good / META_FILE).read_text())
        else:
            assert all(r.successful for r in remote.set_parameters(name, **fix)), name
        assert remote.change_state(name, "configure") is True, process.log()
        assert remote.change_state(name, "activate") is True, process.log()
        assert remote.state(name) == "active"
