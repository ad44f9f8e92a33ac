"""Layered config: YAML/flag values are coerced to the dataclass field types."""

import ast
import dataclasses
import importlib
from dataclasses import dataclass
from typing import Literal

import pytest

from asr import config
from asr.config import ConfigError, field_specs, merge, to_dict


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


def _leaf_fields(cls, prefix=""):
    """(dotted name, default) of every leaf field of an imported dataclass."""
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if dataclasses.is_dataclass(default):
            yield from _leaf_fields(type(default), f"{prefix}{f.name}.")
        else:
            yield prefix + f.name, default


@pytest.mark.parametrize("ref", ["asr.train:RunConfig", "asr.decode:DecodingOptions", "asr.vad:SegmentOptions",
                                 "asr.transcribe:TranscribeOptions"])
def test_flags_read_from_source_match_the_imported_dataclass(ref, monkeypatch):
    """The flags come from the source text (no torch import); they must be exactly the real
    fields, with the real defaults. Without source (a .pyc-only install) the imported class
    gives the same names."""
    module, name = ref.split(":")
    real = dict(_leaf_fields(getattr(importlib.import_module(module), name)))
    specs = field_specs(ref)
    assert [s.name for s in specs] == list(real)
    for spec in specs:
        value = real[spec.name]
        if isinstance(value, str) and value:
            assert spec.default == value, spec  # strings are shown without quotes
        else:
            assert (float(spec.default) if spec.default.endswith("inf") else ast.literal_eval(spec.default)) == value
    monkeypatch.setattr(config, "_find_class", lambda *args, **kwargs: None)
    assert [s.name for s in field_specs(ref)] == list(real)


@dataclass
class Choosy:
    decoder: Literal["greedy", "beam"] = "greedy"  # how to decode


def test_literal_fields_list_their_choices_and_reject_others():
    [spec] = field_specs(f"{__name__}:Choosy")
    assert spec.choices == ("greedy", "beam") and spec.help == "how to decode" and spec.default == "greedy"
    assert merge(Choosy(), {"decoder": "beam"}).decoder == "beam"
    with pytest.raises(ConfigError, match="decoder must be one of greedy, beam"):
        merge(Choosy(), {"decoder": "beem"})
