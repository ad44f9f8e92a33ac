"""Layered configuration: dataclass defaults < recipe YAML < command-line flags.

Each component owns its config dataclass (FeatureConfig next to the features,
ModelConfig next to the model, ...). A run groups them in one nested dataclass;
this module
  * turns every leaf field into a flag (`--model.hidden_size 320`),
  * merges a YAML file of the same nested shape, then the flags, with type checks,
  * dumps the resolved result, which training saves next to its checkpoints.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path

import yaml

from asr.errors import AsrError


class ConfigError(AsrError):
    """An override that names an unknown field or has the wrong type."""


def add_flags(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """Add `--section.field` for every leaf field of the (nested) dataclass `cls`.
    Flags default to SUPPRESS, so only the ones a user gives show up as overrides."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name, kind = f"{prefix}{f.name}", hints[f.name]
        if dataclasses.is_dataclass(kind):
            add_flags(parser, kind, f"{name}.")
        else:
            parser.add_argument(f"--{name}", dest=name, default=argparse.SUPPRESS,
                                metavar=_base_type(kind).__name__.upper(), help=f"(default: {f.default!r})")


def flag_overrides(args: argparse.Namespace, cls: type) -> dict:
    """Collect the dotted flags present in `args` into a nested dict."""
    nested: dict = {}
    for key, value in vars(args).items():
        if "." in key or _is_field(cls, key):
            node = nested
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
    return nested


def load_yaml(path: str | Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read config ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def merge(config, overrides: dict, where: str = ""):
    """Return a copy of dataclass `config` with `overrides` (nested dict) applied."""
    hints = typing.get_type_hints(type(config))
    changes = {}
    for key, value in overrides.items():
        if key not in hints:
            known = ", ".join(f.name for f in dataclasses.fields(config))
            raise ConfigError(f"unknown config field {where}{key!r} (known: {known})")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}{key} must be a mapping")
            changes[key] = merge(current, value, f"{where}{key}.")
        else:
            changes[key] = _coerce(value, hints[key], f"{where}{key}")
    return dataclasses.replace(config, **changes)


def to_dict(config) -> dict:
    """Nested plain dict (tuples as lists), ready for yaml.safe_dump."""
    return dataclasses.asdict(config, dict_factory=lambda items: {k: list(v) if isinstance(v, tuple) else v
                                                                  for k, v in items})


def _is_field(cls: type, name: str) -> bool:
    return any(f.name == name for f in dataclasses.fields(cls))


def _base_type(kind):
    """`float | None` -> float, `tuple[float, ...]` -> tuple, `int` -> int."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(kind) if a is not type(None))
    return typing.get_origin(kind) or kind


def _coerce(value, kind, name: str):
    if value is None:
        if type(None) in typing.get_args(kind):
            return None
        raise ConfigError(f"{name} cannot be null")
    base = _base_type(kind)
    if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in typing.get_args(kind):
        return None  # `--lm none` switches off an optional setting, even a path
    if isinstance(value, str) and base is not str:
        value = yaml.safe_load(value)  # "3" -> 3, "true" -> True, "1e-3" -> 0.001
    if base is tuple and isinstance(value, list):
        value = tuple(value)
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if base is float and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if not isinstance(value, base) or (base is int and isinstance(value, bool)):
        raise ConfigError(f"{name} must be {base.__name__}, got {value!r}")
    return value
