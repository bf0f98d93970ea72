"""Launch files and parameter files, checked statically (the `launch` package has no PyPI wheel here).

Every executable a launch file starts is a console entry point, every parameter file it names exists and parses
in the `/**: ros__parameters:` form with only keys the node declares, and every launch argument is used.
"""

import ast
import importlib
import re
from pathlib import Path

import pytest
import yaml

from dense_descriptors_ros.cli.config_options import flatten
from dense_descriptors_ros.io.fastdds_profile import PROFILE_FILE, large_messages_env

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == name
    ]


def _kw(call: ast.Call, key: str):
    for kw in call.keywords:
        if kw.arg == key:
            return kw.value
    return None


def test_there_are_launch_files():
    assert LAUNCH_FILES


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_consistent(path, console_scripts):
    tree = ast.parse(path.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in ast.walk(tree))
    scripts = console_scripts
    for call in _calls(tree, "Node"):
        package = _kw(call, "package")
        if isinstance(package, ast.Constant) and package.value != "dense_descriptors_ros":
            continue  # rviz2 and other packages' executables
        executable = _kw(call, "executable")
        assert isinstance(executable, ast.Constant), f"{path.name}: executable must be a literal"
        assert executable.value in scripts, f"{path.name}: {executable.value} is not a console entry point"
        module = scripts[executable.value].split(":")[0]
        importlib.import_module(module)
    declared = {c.args[0].value for c in _calls(tree, "DeclareLaunchArgument")}
    used = {c.args[0].value for c in _calls(tree, "LaunchConfiguration")}
    assert declared == used, (
        f"{path.name}: declared but unused {declared - used}, used but undeclared {used - declared}"
    )
    for match in re.finditer(r'"config",\s*"([^"]+\.yaml)"', path.read_text()):
        assert (REPO / "config" / match.group(1)).is_file(), f"{path.name}: config/{match.group(1)} missing"
    for match in re.finditer(r'"rviz",\s*"([^"]+\.rviz)"', path.read_text()):
        assert (REPO / "config" / "rviz" / match.group(1)).is_file(), f"{path.name}: rviz/{match.group(1)} missing"


def test_parameter_file_has_only_declared_parameters(node_executable, node_parameters):
    name = node_executable.removesuffix("_node")
    candidates = [REPO / "config" / f"{name}.yaml", REPO / "config" / f"{name}s.yaml"]
    path = next((p for p in candidates if p.is_file()), None)
    assert path is not None, f"no config file for {node_executable}"
    data = yaml.safe_load(path.read_text())
    params = data["/**"]["ros__parameters"]
    unknown = set(flatten(params)) - set(node_parameters)
    assert not unknown, f"{path.name}: parameters the node does not declare: {unknown}"


def test_rviz_configs_parse():
    for path in (REPO / "config" / "rviz").glob("*.rviz"):
        data = yaml.safe_load(path.read_text())
        assert data["Visualization Manager"]["Displays"], path.name


def test_every_console_script_imports(console_scripts):
    for name, target in console_scripts.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name


def test_two_node_tracker_pipeline_subscribes_descriptors_reliably():
    """640x480 descriptor images (19.7 MB) never arrive over best effort: the launch file says reliable."""
    assert '"descriptors_qos": "reliable"' in (REPO / "launch" / "tracker.launch.py").read_text()


LARGE_MESSAGE_LAUNCH_FILES = ("descriptors.launch.py", "tracker.launch.py")


@pytest.mark.parametrize("name", LARGE_MESSAGE_LAUNCH_FILES)
def test_nodes_with_large_messages_get_the_fastdds_profile(name):
    """descriptor_node and tracker_node are started with config/fastdds_large_messages.xml unless the user exported
    a profile of their own."""
    source = (REPO / "launch" / name).read_text()
    tree = ast.parse(source)
    ours = [c for c in _calls(tree, "Node") if getattr(_kw(c, "package"), "value", None) == "dense_descriptors_ros"]
    assert ours and all(getattr(_kw(c, "additional_env"), "id", None) == "transport" for c in ours), name
    assert 'transport = large_messages_env(os.path.join(share, "config"))' in source


def test_the_profile_goes_to_a_node_unless_the_user_exported_one(tmp_path):
    assert large_messages_env(tmp_path, environ={}) == {"FASTRTPS_DEFAULT_PROFILES_FILE": str(tmp_path / PROFILE_FILE)}
    assert (REPO / "config" / PROFILE_FILE).is_file()  # the file the launch files name is shipped (setup.py: *.xml)
    for variable in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"):  # Fast DDS 2 and 3
        assert large_messages_env(tmp_path, environ={variable: "/mine.xml", "HOME": "/root"}) == {}


def test_fastdds_profile_fits_descriptor_messages_and_keeps_udp():
    """The shared-memory segment holds two of the largest descriptor messages the default parameters make (a square
    image at max_side 640 -> 160x160 cells x 32 float32 channels of the out-of-the-box model, 3.3 MB), and UDPv4
    stays for discovery and other hosts."""
    from xml.etree import ElementTree

    ns = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    root = ElementTree.parse(REPO / "config" / "fastdds_large_messages.xml").getroot()
    kinds = {d.findtext("f:transport_id", namespaces=ns): d for d in root.iterfind(".//f:transport_descriptor", ns)}
    participant = root.find("f:participant", ns)
    assert participant.get("is_default_profile") == "true"
    used = [e.text for e in participant.iterfind("f:rtps/f:userTransports/f:transport_id", ns)]
    assert participant.findtext("f:rtps/f:useBuiltinTransports", namespaces=ns) == "false"
    types = [kinds[t].findtext("f:type", namespaces=ns) for t in used]
    assert sorted(types) == ["SHM", "UDPv4"]
    shm = kinds[used[types.index("SHM")]]
    descriptors = yaml.safe_load((REPO / "config" / "descriptors.yaml").read_text())["/**"]["ros__parameters"]
    largest = (descriptors["max_side"] // 4) ** 2 * 32 * 4
    assert int(shm.findtext("f:segment_size", namespaces=ns)) >= 2 * largest
