"""Fixtures of the repository-level tests: the console scripts of setup.py, and for every node executable
(``node_executable``, parametrized) the parameter names its config dataclass declares."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from dense_descriptors_ros.config import config_leaves
from dense_descriptors_ros.nodes.configured_node import ConfiguredLifecycleNode

REPO = Path(__file__).resolve().parents[2]


def _console_scripts() -> dict[str, str]:
    """``{name: "module:function"}`` of setup.py's console_scripts."""
    scripts = {}
    for node in ast.walk(ast.parse((REPO / "setup.py").read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and " = " in node.value and ":" in node.value:
            name, target = (s.strip() for s in node.value.split("="))
            scripts[name] = target
    return scripts


def _node_configs() -> dict[str, type]:
    """``{executable: config dataclass}`` of every console script that runs a node (module in nodes/, which
    defines exactly one ConfiguredLifecycleNode)."""
    configs = {}
    for name, target in _console_scripts().items():
        module_name = target.split(":")[0]
        if not module_name.startswith("dense_descriptors_ros.nodes."):
            continue
        module = importlib.import_module(module_name)
        (node,) = (
            obj
            for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, ConfiguredLifecycleNode) and obj.__module__ == module_name
        )
        configs[name] = node.CONFIG
    return configs


NODE_CONFIGS = _node_configs()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "node_executable" in metafunc.fixturenames:
        metafunc.parametrize("node_executable", sorted(NODE_CONFIGS))


@pytest.fixture(scope="session")
def console_scripts() -> dict[str, str]:
    return _console_scripts()


@pytest.fixture
def node_parameters(node_executable: str) -> list[str]:
    """The node's parameter names: its config fields, nested config sections as dotted names."""
    return [path for path, _ in config_leaves(NODE_CONFIGS[node_executable])]
