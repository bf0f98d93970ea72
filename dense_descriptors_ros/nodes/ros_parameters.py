"""Declare a config dataclass (dense_descriptors_ros.config) as ROS parameters and read it back.

Every field becomes a parameter with its help text as description and its range as an IntegerRange or
FloatingPointRange, so ``ros2 param describe`` documents it and out-of-range values set at run time are refused by
rclpy itself. Reading goes through the same ``from_mapping`` checks as the CLI and YAML recipes.

Values given at start-up (``--ros-args -p``, parameter files, launch files) that rclpy would refuse (a wrong type,
out of range) do not stop the node: the parameter keeps its default and the reason is returned, for configure to
report. An integer given for a float parameter (YAML reads ``1`` as an integer) is taken as a float.
"""

from __future__ import annotations

from typing import Any, TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from dense_descriptors_ros.config import ConfigError, FieldSpec, check_value, config_leaves, from_mapping, nest

T = TypeVar("T")

_ARRAY_TYPES = {
    bool: Parameter.Type.BOOL_ARRAY,
    int: Parameter.Type.INTEGER_ARRAY,
    float: Parameter.Type.DOUBLE_ARRAY,
    str: Parameter.Type.STRING_ARRAY,
}


def _descriptor(spec: FieldSpec) -> ParameterDescriptor:
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


def parameter_specs(cls: type) -> dict[str, FieldSpec]:
    """``{parameter name: spec}`` of config ``cls``; nested config dataclasses give dotted names
    (``tracking.search_radius_px``), which is how ROS nests parameters in YAML files."""
    return dict(config_leaves(cls))


def given_parameters(node: Node) -> dict[str, Parameter]:
    """The values given to ``node`` at start-up: ``--ros-args -p``, parameter files, launch files and the
    ``parameter_overrides`` argument. rclpy keeps them in ``Node._parameter_overrides``; it has no public accessor."""
    return dict(getattr(node, "_parameter_overrides", {}))


def as_declared_type(spec: FieldSpec, value: Any) -> Any:
    """``value`` with integers turned into floats where ``spec`` is a float (or list of floats) field."""
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if spec.type in (list, tuple) and spec.element_type is float and isinstance(value, (list, tuple)):
        return [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return value


def _declare(node: Node, name: str, spec: FieldSpec, value: Any) -> None:
    descriptor = _descriptor(spec)
    if spec.type in (list, tuple):
        values = list(value or [])
        if not values:
            # An empty list has no ROS type of its own: declare the array type without a value.
            node.declare_parameter(name, _ARRAY_TYPES[spec.element_type], descriptor, ignore_override=True)
            return
        value = values
    node.declare_parameter(name, value, descriptor, ignore_override=True)


def declare_config_parameters(node: Node, cls: type) -> dict[str, str]:
    """Declare every field of config dataclass ``cls`` on ``node``, with the value given at start-up if there is one.

    Returns ``{name: reason}`` for given values that could not be used (the parameter keeps its default).
    """
    given = given_parameters(node)
    unusable: dict[str, str] = {}
    for name, spec in parameter_specs(cls).items():
        value = as_declared_type(spec, given[name].value) if name in given else None
        if isinstance(value, (list, tuple)) and not value:
            _declare(node, name, spec, [])  # an empty list has no element type to check
            continue
        _declare(node, name, spec, as_declared_type(spec, spec.default))
        if value is None:
            continue
        # Setting (not declaring) the given value makes rclpy check it against the declared type and range.
        result = node.set_parameters([Parameter(name, value=value)])[0]
        if not result.successful:
            unusable[name] = _reason(spec, value, result.reason)
    return unusable


def _reason(spec: FieldSpec, value: Any, rclpy_reason: str) -> str:
    """Why ``value`` cannot be used, in the words of the config checks when they refuse it too."""
    try:
        check_value(spec, value)
    except ConfigError as err:
        return str(err)
    return f"{spec.name}: {rclpy_reason}"


def read_config_parameters(node: Node, cls: type[T], changes: dict[str, Any] | None = None) -> T:
    """The node's current parameter values (with ``changes`` applied) as config ``cls``; ConfigError names an
    invalid parameter."""
    values = {}
    for name, spec in parameter_specs(cls).items():
        if changes and name in changes:
            value = changes[name]
        else:
            try:
                value = node.get_parameter(name).value
            except ParameterUninitializedException:
                value = []
        values[name] = list(value) if spec.type in (list, tuple) and value is not None else value
    return from_mapping(cls, nest(values), where=f"{node.get_name()}: parameter ")
