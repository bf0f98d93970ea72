"""Settings files the commands read: the nodes' ROS 2 parameter files (``--params``) and flat config YAML files.

A ROS 2 parameter file (config/*.yaml) holds one section per node, ``/**`` for every node or the node's name
(optionally with its namespace), each with a ``ros__parameters`` mapping whose nested sections are dotted
parameter names. A command that does what a node does reads the node's section, so the same file configures
both; parameters only the node has (QoS, frames, autostart) are named in a log line and otherwise ignored, as
ROS ignores parameters a node does not declare.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dense_descriptors_ros.cli.config_options import ConfigOptions, flatten
from dense_descriptors_ros.config import ConfigError, load_yaml, read_yaml_mapping

log = logging.getLogger(__name__)
WILDCARD = "**"


def _node_sections(data: dict[str, Any], path: str | Path, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(node name with namespace, its ros__parameters)``; namespaces may be nested mappings or in the key."""
    for key, section in data.items():
        name = f"{prefix}/{str(key).strip('/')}"
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: {name}: expected a mapping with 'ros__parameters'")
        if "ros__parameters" in section:
            yield name, section["ros__parameters"]
        else:
            yield from _node_sections(section, path, name)


def read_node_parameters(path: str | Path | None, node_name: str) -> dict[str, Any]:
    """``{dotted parameter name: value}`` that the ROS 2 parameter file ``path`` sets for ``node_name``.

    Sections ``/**`` apply first, then those named ``node_name`` in any namespace (``/camera/node_name``, or
    ``node_name`` nested under ``/camera``). No file (``--params`` not given) sets nothing.
    """
    if path is None:
        return {}
    wildcard, own = [], []
    for name, parameters in _node_sections(read_yaml_mapping(path, "parameter file"), path):
        if not isinstance(parameters, dict):
            raise ConfigError(f"{path}: {name}: ros__parameters must be a mapping")
        last = name.rsplit("/", 1)[-1]
        if last == WILDCARD:
            wildcard.append(parameters)
        elif last == node_name:
            own.append(parameters)
    if not wildcard and not own:
        raise ConfigError(f"{path}: no parameters for /** or {node_name}")
    values: dict[str, Any] = {}
    for parameters in wildcard + own:
        values.update(flatten(parameters))
    return values


def take_parameters(parameters: dict[str, Any], options: ConfigOptions, prefix: str = "") -> dict[str, Any]:
    """Remove from ``parameters`` the ones under ``prefix`` that are fields of ``options``' config; return those.

    ``prefix`` is the config's section among the node's parameters (``slam.`` for the SLAM settings).
    """
    fields = options.field_paths()
    taken = {
        name: value for name, value in parameters.items() if name.startswith(prefix) and name[len(prefix) :] in fields
    }
    for name in taken:
        del parameters[name]
    return {name[len(prefix) :]: value for name, value in taken.items()}


def add_params_argument(parser: argparse.ArgumentParser, node_name: str) -> None:
    parser.add_argument(
        "--params",
        default=None,
        metavar="FILE",
        help=f"ROS 2 parameter file of {node_name} (e.g. config/*.yaml, sections /** or {node_name}); "
        "options given on the command line override it",
    )


def log_unused_parameters(path: str | None, parameters: dict[str, Any]) -> None:
    """One log line naming the parameters of ``path`` that no setting of the command took."""
    if parameters:
        log.info("%s: node-only parameters, not used by this command: %s", path, ", ".join(sorted(parameters)))


def config_file_values(cls: type, path: str | Path) -> dict[str, Any]:
    """``{field path: value}`` that a flat YAML config file of ``cls`` sets (checked: errors name the file and key)."""
    load_yaml(cls, path)
    return flatten(read_yaml_mapping(path, "config file"))
