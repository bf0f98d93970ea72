"""A config dataclass's fields as command-line options, and the dataclass built back from them.

The options come from the same field metadata (help, range, choices, defaults) that ``nodes/ros_parameters.py``
declares as ROS parameters, so the command line and the nodes document and check a setting the same way.
Nested config dataclasses become dotted options (``--tracking.min-inliers``), as they become dotted ROS
parameter names. An option left out of the command line is left out of the namespace, so values read from files
(``--params``, ``--config``) are only overridden by options the user gave.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dense_descriptors_ros.config import FieldSpec, check_value, config_leaves, from_mapping, nest


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (the inverse of :func:`nest`)."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + str(key)] = value
    return flat


def _help(spec: FieldSpec, default: Any, show_default: bool) -> str:
    """The field's help with its range and default (its choices are the option's metavar)."""
    text = spec.help
    if spec.range is not None:
        text += f" [{spec.range[0]}, {spec.range[1]}]"
    if show_default:
        text += f" (default: {default!r})" if isinstance(default, str) else f" (default: {default})"
    return text.replace("%", "%%")  # argparse formats help strings with %


@dataclass(frozen=True)
class ConfigOptions:
    """The fields of config dataclass ``cls`` as options of one command.

    ``names`` renames options (``{"model_dir": "model"}`` -> ``--model``), ``defaults`` replaces the dataclass's
    default where the command wants another one (shown in ``--help``), ``only`` limits the options to these
    fields (the rest still take part in :meth:`build`), and ``show_defaults=False`` leaves the defaults out of
    the help where they come from elsewhere (a training recipe).
    """

    cls: type
    names: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    only: tuple[str, ...] | None = None
    show_defaults: bool = True

    def _options(self) -> Iterator[tuple[str, FieldSpec]]:
        for path, spec in config_leaves(self.cls):
            if self.only is None or path in self.only:
                yield path, spec

    def option(self, path: str) -> str:
        """The option string of a field path, e.g. ``tracking.min_inliers`` -> ``--tracking.min-inliers``."""
        return "--" + self.names.get(path, path).replace("_", "-")

    def _dest(self, path: str) -> str:
        # Namespaced so a field can never collide with a command's own arguments.
        return f"{self.cls.__name__}:{path}"

    def add_to(self, parser: argparse.ArgumentParser, title: str | None = None) -> None:
        """Add one option per field, in an argument group titled ``title`` (the class's docstring line if None)."""
        doc = (self.cls.__doc__ or "").strip().splitlines()
        group = parser.add_argument_group(title or (doc[0] if doc else self.cls.__name__))
        for path, spec in self._options():
            default = self.defaults.get(path, spec.default)
            kwargs: dict[str, Any] = {
                "dest": self._dest(path),
                "default": argparse.SUPPRESS,
                "help": _help(spec, default, self.show_defaults),
            }
            option = self.option(path)
            metavar = option.rsplit(".", 1)[-1].lstrip("-").replace("-", "_").upper()
            if spec.type is bool:
                kwargs["action"] = argparse.BooleanOptionalAction
            elif spec.type in (list, tuple):
                kwargs.update(nargs="*", type=spec.element_type, metavar=metavar)
            else:
                choices = "{" + ",".join(map(str, spec.choices)) + "}" if spec.choices else None
                kwargs.update(type=spec.type, metavar=choices or metavar)
            group.add_argument(option, **kwargs)

    def given(self, args: argparse.Namespace) -> dict[str, Any]:
        """``{field path: value}`` of the options on the command line, each checked; ConfigError names the option."""
        values = {}
        for path, spec in self._options():
            dest = self._dest(path)
            if hasattr(args, dest):
                values[path] = check_value(dataclasses.replace(spec, name=self.option(path)), getattr(args, dest))
        return values

    def build(self, args: argparse.Namespace, *sources: tuple[str, Mapping[str, Any]]) -> Any:
        """The config: the command's defaults, then each ``(where, {field path: value})`` source, then the options.

        A source holds values read from a file; ``where`` (the file) prefixes an error about one of them.
        """
        leaves = dict(config_leaves(self.cls))
        values = dict(self.defaults)
        for where, source in sources:
            for path, value in source.items():
                values[path] = check_value(dataclasses.replace(leaves[path], name=path), value, f"{where}: ")
        values.update(self.given(args))
        return from_mapping(self.cls, nest(values))

    def field_paths(self) -> set[str]:
        """Every field path of the config, options or not (what a file may set)."""
        return {path for path, _ in config_leaves(self.cls)}
