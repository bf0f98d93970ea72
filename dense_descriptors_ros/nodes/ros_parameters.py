"""Declare a config dataclass (dense_descriptors_ros.config) as ROS parameters and read it back.

Every field becomes a parameter with its help text as description and its range as an IntegerRange or
FloatingPointRange, so ``ros2 param describe`` documents it and out-of-range values set at run time are refused by
rclpy itself. Reading goes through the same ``from_mapping`` checks as the CLI and YAML recipes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from dense_descriptors_ros.config import field_specs, from_mapping

T = TypeVar("T")

_ARRAY_TYPES = {
    bool: Parameter.Type.BOOL_ARRAY,
    int: Parameter.Type.INTEGER_ARRAY,
    float: Parameter.Type.DOUBLE_ARRAY,
    str: Parameter.Type.STRING_ARRAY,
}


def _descriptor(spec: Any) -> ParameterDescriptor:
    text = spec.help
    if spec.choices:
        text += f" (one of: {', '.join(map(str, spec.choices))})"
    descriptor = ParameterDescriptor(description=text)
    if spec.range is not None and spec.type in (int, float):
        lo, hi = spec.range
        if spec.type is int:
            descriptor.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
        else:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
    return descriptor


def declare_config_parameters(node: Node, cls: type, overrides: dict[str, Any] | None = None, prefix: str = "") -> None:
    """Declare every field of config dataclass ``cls`` on ``node`` (defaults from the dataclass or ``overrides``).

    Nested config dataclasses become dotted names (``tracking.search_radius_px``), which is how ROS nests
    parameters in YAML files.
    """
    overrides = overrides or {}
    for spec in field_specs(cls):
        name = prefix + spec.name
        if dataclasses.is_dataclass(spec.type):
            declare_config_parameters(node, spec.type, overrides, prefix=f"{name}.")
            continue
        default = overrides.get(name, spec.default)
        descriptor = _descriptor(spec)
        if spec.type in (list, tuple):
            values = list(default or [])
            element = type(values[0]) if values else spec.element_type
            if not values:
                # An empty list has no ROS type of its own: declare the array type without a value.
                node.declare_parameter(name, _ARRAY_TYPES[element], descriptor)
                continue
            node.declare_parameter(name, values, descriptor)
        else:
            node.declare_parameter(name, default, descriptor)


def read_config_parameters(node: Node, cls: type[T]) -> T:
    """The node's current parameter values as config ``cls``; ConfigError names an invalid parameter."""
    return from_mapping(cls, _values(node, cls, ""), where=f"{node.get_name()}: parameter ")


def _values(node: Node, cls: type, prefix: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in field_specs(cls):
        name = prefix + spec.name
        if dataclasses.is_dataclass(spec.type):
            values[spec.name] = _values(node, spec.type, f"{name}.")
            continue
        try:
            value = node.get_parameter(name).value
        except ParameterUninitializedException:
            value = []
        values[spec.name] = list(value) if spec.type in (list, tuple) and value is not None else value
    return values
