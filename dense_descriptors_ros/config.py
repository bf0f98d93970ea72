"""The one config system: dataclasses loaded from YAML, shared by the CLI, the training recipes and the nodes.

A config class is a plain ``@dataclass`` whose fields may carry ``metadata={"help": ..., "range": (lo, hi)}``.
``from_mapping`` builds one from a dict (unknown keys and wrong types are errors that name the key),
``load_yaml`` from a file, and ``field_specs`` lists the fields so a node can declare them as ROS parameters
with descriptions and ranges.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value or file is invalid; the message names the key and what was expected."""


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    name: str
    default: Any
    type: type
    help: str
    range: tuple[float, float] | None
    choices: tuple[Any, ...] | None
    element_type: type = str  # for list/tuple fields: the type of their items


def _element_type(tp: Any) -> type:
    """``list[float]`` / ``tuple[int, ...]`` -> float / int; str when it cannot be told."""
    while typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    args = [a for a in typing.get_args(tp) if a is not Ellipsis]
    return args[0] if args and isinstance(args[0], type) else str


def _resolved_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(tp: Any) -> Any:
    """``int | None`` -> int; ``list[int]`` -> list; plain types unchanged."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else tp
    return origin or tp


def field_specs(cls: type) -> list[FieldSpec]:
    """The fields of a config dataclass with their help text, numeric range and allowed choices."""
    hints = _resolved_types(cls)
    specs = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        specs.append(
            FieldSpec(
                name=f.name,
                default=default,
                type=_base_type(hints[f.name]),
                help=f.metadata.get("help", ""),
                range=f.metadata.get("range"),
                choices=f.metadata.get("choices"),
                element_type=_element_type(hints[f.name]),
            )
        )
    return specs


def config_leaves(cls: type, prefix: str = "") -> Iterator[tuple[str, FieldSpec]]:
    """``(dotted path, spec)`` of every non-dataclass field of config ``cls``, nested sections included."""
    for spec in field_specs(cls):
        if dataclasses.is_dataclass(spec.type):
            yield from config_leaves(spec.type, f"{prefix}{spec.name}.")
        else:
            yield prefix + spec.name, spec


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``."""
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        *sections, leaf = path.split(".")
        node = nested
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return nested


def check_value(spec: FieldSpec, value: Any, where: str = "") -> Any:
    """Coerce ``value`` to the field's type and check its range/choices; raise ConfigError naming the key."""
    key = f"{where}{spec.name}"
    tp = spec.type
    if value is None:
        return None
    try:
        if tp is bool:
            if not isinstance(value, bool):
                raise TypeError
        elif tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            value = int(value)
        elif tp is float:
            if isinstance(value, bool):
                raise TypeError
            value = float(value)
        elif tp is str:
            if not isinstance(value, str):
                raise TypeError
        elif tp in (list, tuple):
            if not isinstance(value, (list, tuple)):
                raise TypeError
            value = tp(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}") from None
    if spec.range is not None and isinstance(value, (int, float)):
        lo, hi = spec.range
        if not lo <= value <= hi:
            raise ConfigError(f"{key}: {value} is outside the allowed range [{lo}, {hi}]")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"{key}: {value!r} is not one of {list(spec.choices)}")
    return value


def from_mapping(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build config ``cls`` from a mapping; nested dataclass fields take nested mappings."""
    data = dict(data or {})
    hints = _resolved_types(cls)
    specs = {s.name: s for s in field_specs(cls)}
    unknown = sorted(set(data) - set(specs))
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {unknown}; known: {sorted(specs)}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = from_mapping(tp, value, where=f"{where}{name}.")
        else:
            kwargs[name] = check_value(specs[name], value, where)
    return cls(**kwargs)


def read_yaml_mapping(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The mapping at the top of YAML file ``path``; ConfigError names the file (``what`` says what it is for)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_yaml(cls: type[T], path: str | Path, section: str | None = None) -> T:
    """Load config ``cls`` from a YAML file (optionally one top-level section of it)."""
    data = read_yaml_mapping(path)
    if section is not None:
        data = data.get(section, {})
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at section {section!r}")
    try:
        return from_mapping(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def to_mapping(obj: Any) -> dict[str, Any]:
    """A plain dict (YAML-safe: tuples become lists) of a config dataclass."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(obj))
