"""Layered config: YAML/flag values are coerced to the dataclass field types."""

from dataclasses import dataclass

import pytest

from asr.config import ConfigError, merge, to_dict


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
