"""Layered config: YAML/flag values are coerced to the dataclass field types."""

import argparse
import dataclasses
import subprocess
import sys
from dataclasses import dataclass
from typing import Literal

import pytest

from asr.config import ConfigError, add_flags, leaf_fields, merge, option, to_dict
from asr.configs import DecodingOptions, RunConfig, TranscribeOptions
from asr.serve import ServeConfig
from asr.vad import SegmentOptions


@dataclass
class Example:
    path: str | None = "default.arpa"
    name: str = "x"
    rate: float = 1.0
    speeds: tuple[float, ...] = (1.0,)


def test_none_switches_off_an_optional_path_but_not_a_plain_string():
    assert merge(Example(), {"path": "none"}).path is None
    assert merge(Example(), {"path": "NULL"}).path is None
    assert merge(Example(), {"name": "none"}).name == "none"


def test_strings_from_flags_become_numbers_and_tuples():
    merged = merge(Example(), {"rate": "1e-3", "speeds": "[0.9, 1.1]"})
    assert merged.rate == 0.001 and merged.speeds == (0.9, 1.1)
    assert to_dict(merged)["speeds"] == [0.9, 1.1]  # YAML-safe


def test_wrong_type_and_unknown_field_are_config_errors():
    with pytest.raises(ConfigError, match="rate"):
        merge(Example(), {"rate": "fast"})
    with pytest.raises(ConfigError, match="nope"):
        merge(Example(), {"nope": 1})


@pytest.mark.parametrize("cls", [RunConfig, DecodingOptions, SegmentOptions, TranscribeOptions, ServeConfig])
def test_every_flag_has_help_and_its_default(cls):
    """Each field's help comes from its `option(...)` metadata, and --help shows the real default."""
    parser = argparse.ArgumentParser()
    add_flags(parser, cls)
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert list(actions) == [name for name, _, _ in leaf_fields(cls)]
    for name, _, f in leaf_fields(cls):
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        assert f.metadata["help"] and actions[name].help.startswith(f.metadata["help"].replace("%", "%%"))
        shown = value if isinstance(value, str) and value else repr(value)
        assert actions[name].help.endswith(f"(default: {shown})")


def test_config_help_needs_no_torch():
    """`asr --help` lists every config field: the dataclasses live in torch-free modules."""
    code = "import sys, asr.configs, asr.vad, asr.serve; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


@dataclass
class Choosy:
    decoder: Literal["greedy", "beam"] = option("greedy", "how to decode")


def test_literal_fields_list_their_choices_and_reject_others():
    parser = argparse.ArgumentParser()
    add_flags(parser, Choosy)
    [action] = [a for a in parser._actions if a.dest == "decoder"]
    assert action.choices == ("greedy", "beam") and action.help == "how to decode (default: greedy)"
    assert merge(Choosy(), {"decoder": "beam"}).decoder == "beam"
    with pytest.raises(ConfigError, match="decoder must be one of greedy, beam"):
        merge(Choosy(), {"decoder": "beem"})
