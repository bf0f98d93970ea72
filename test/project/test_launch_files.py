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

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))

# executable -> config dataclass whose fields are that node's parameters
NODE_CONFIGS = {
    "descriptor_node": "dense_descriptors_ros.nodes.descriptor_node:DescriptorNodeConfig",
    "recorder_node": "dense_descriptors_ros.nodes.recorder_node:RecorderNodeConfig",
    "tracker_node": "dense_descriptors_ros.nodes.tracker_node:TrackerNodeConfig",
    "slam_node": "dense_descriptors_ros.nodes.slam_node:SlamNodeConfig",
}


def _entry_points() -> dict[str, str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    scripts = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and " = " in node.value and ":" in node.value:
            name, target = (s.strip() for s in node.value.split("="))
            scripts[name] = target
    return scripts


def _config_fields(executable: str) -> set[str]:
    """Parameter names of a node: its config fields, nested config sections as dotted names."""
    import dataclasses

    def names(cls, prefix=""):
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.type) or (
                isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory)
            ):
                yield from names(f.default_factory, f"{prefix}{f.name}.")
            else:
                yield prefix + f.name

    module, cls = NODE_CONFIGS[executable].split(":")
    return set(names(getattr(importlib.import_module(module), cls)))


def _flatten(params: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in params.items():
        keys |= _flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
    return keys


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
def test_launch_file_is_consistent(path):
    tree = ast.parse(path.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in ast.walk(tree))
    scripts = _entry_points()
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


@pytest.mark.parametrize("executable", sorted(NODE_CONFIGS))
def test_parameter_file_has_only_declared_parameters(executable):
    name = executable.removesuffix("_node")
    candidates = [REPO / "config" / f"{name}.yaml", REPO / "config" / f"{name}s.yaml"]
    path = next((p for p in candidates if p.is_file()), None)
    assert path is not None, f"no config file for {executable}"
    data = yaml.safe_load(path.read_text())
    params = data["/**"]["ros__parameters"]
    unknown = _flatten(params) - _config_fields(executable)
    assert not unknown, f"{path.name}: parameters the node does not declare: {unknown}"


def test_rviz_configs_parse():
    for path in (REPO / "config" / "rviz").glob("*.rviz"):
        data = yaml.safe_load(path.read_text())
        assert data["Visualization Manager"]["Displays"], path.name


def test_every_console_script_imports():
    for name, target in _entry_points().items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name
