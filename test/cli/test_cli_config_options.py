"""Command-line options generated from config dataclass metadata, and the dataclass built back from them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from dense_descriptors_ros.cli.config_options import ConfigOptions, flatten, nest
from dense_descriptors_ros.config import ConfigError, config_leaves
from dense_descriptors_ros.slam.stereo_slam import StereoSlamConfig
from dense_descriptors_ros.tracking.tracker_config import TrackerConfig


@dataclass
class Inner:
    """inner settings"""

    radius: float = field(default=2.5, metadata={"help": "search radius in px", "range": (0.0, 10.0)})
    enabled: bool = field(default=True, metadata={"help": "use it"})


@dataclass
class Outer:
    """outer settings"""

    mode: str = field(default="fast", metadata={"help": "how to run", "choices": ("fast", "exact")})
    count: int = field(default=5, metadata={"help": "how many, 50% of them kept", "range": (1, 100)})
    sizes: list[float] = field(default_factory=lambda: [1.0, 2.0], metadata={"help": "sizes"})
    model_dir: str = field(default="", metadata={"help": "checkpoint folder"})
    inner: Inner = field(default_factory=Inner)


OPTIONS = ConfigOptions(Outer, names={"model_dir": "model"})


def _parse(*argv: str, options: ConfigOptions = OPTIONS) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cmd")
    parser.add_argument("--out")
    options.add_to(parser)
    return parser.parse_args(list(argv))


def test_help_documents_every_field_with_range_choices_and_default(capsys):
    with pytest.raises(SystemExit):
        _parse("--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "outer settings:" in text
    assert "--mode {fast,exact} how to run (default: 'fast')" in text
    assert "--count COUNT how many, 50% of them kept [1, 100] (default: 5)" in text
    assert "--sizes [SIZES ...] sizes (default: [1.0, 2.0])" in text
    assert "--model MODEL checkpoint folder (default: '')" in text
    assert "--inner.radius RADIUS search radius in px [0.0, 10.0] (default: 2.5)" in text
    assert "--inner.enabled, --no-inner.enabled use it (default: True)" in text


def test_without_options_the_dataclass_defaults_come_back():
    assert OPTIONS.build(_parse()) == Outer()
    assert OPTIONS.given(_parse()) == {}
    # The real configs too: every field's default is the dataclass's.
    for cls in (TrackerConfig, StereoSlamConfig):
        assert ConfigOptions(cls).build(_parse(options=ConfigOptions(cls))) == cls()


def test_options_set_fields_nested_ones_and_booleans():
    args = _parse("--mode", "exact", "--count", "7", "--sizes", "3", "4.5", "--model", "m", "--inner.radius", "1")
    assert OPTIONS.build(args) == Outer("exact", 7, [3.0, 4.5], "m", Inner(1.0, True))
    assert OPTIONS.build(_parse("--no-inner.enabled")).inner.enabled is False
    assert OPTIONS.given(_parse("--inner.radius", "1")) == {"inner.radius": 1.0}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--count", "0"], "--count: 0 is outside the allowed range [1, 100]"),
        (["--inner.radius", "11"], "--inner.radius: 11.0 is outside the allowed range [0.0, 10.0]"),
        (["--mode", "slow"], "--mode: 'slow' is not one of ['fast', 'exact']"),
    ],
)
def test_range_and_choice_errors_name_the_option(argv, message):
    with pytest.raises(ConfigError) as error:
        OPTIONS.build(_parse(*argv))
    assert str(error.value) == message


def test_a_wrong_type_is_argparse_s_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse("--count", "many")
    assert exit_info.value.code == 2 and "--count: invalid int value: 'many'" in capsys.readouterr().err


def test_command_defaults_then_files_then_options():
    options = ConfigOptions(Outer, defaults={"count": 9})
    assert options.build(_parse(options=options)).count == 9
    params = ("params.yaml", {"count": 11, "inner.radius": 3.0})
    config_file = ("config.yaml", {"count": 12})
    built = options.build(_parse("--mode", "exact", options=options), params, config_file)
    assert (built.count, built.inner.radius, built.mode) == (12, 3.0, "exact")
    assert options.build(_parse("--count", "13", options=options), params, config_file).count == 13
    with pytest.raises(ConfigError, match=r"^params.yaml: inner.radius: 20.0 is outside"):
        options.build(_parse(options=options), ("params.yaml", {"inner.radius": 20.0}))


def test_only_limits_the_options_and_help_can_omit_defaults(capsys):
    options = ConfigOptions(Outer, only=("count",), show_defaults=False)
    with pytest.raises(SystemExit):
        _parse("--help", options=options)
    text = capsys.readouterr().out
    assert "--count" in text and "--mode" not in text and "default" not in text


def test_nest_and_flatten_are_inverse():
    nested = {"a": 1, "b": {"c": [1, 2], "d": {"e": "x"}}}
    assert flatten(nested) == {"a": 1, "b.c": [1, 2], "b.d.e": "x"}
    assert nest(flatten(nested)) == nested
    assert [path for path, _ in config_leaves(Outer)] == [
        "mode",
        "count",
        "sizes",
        "model_dir",
        "inner.radius",
        "inner.enabled",
    ]
