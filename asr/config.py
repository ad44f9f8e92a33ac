"""Layered configuration: dataclass defaults < recipe YAML < command-line flags.

Each component has a config dataclass (FeatureConfig for the features, ModelConfig for the
model, ...; the torch-free asr.configs holds them), whose fields say their help text with
`option(default, help)`. A run groups them in one nested dataclass; this module
  * turns every leaf field into a kebab-case flag (`--model.hidden-size 320`) whose help
    is the field's (`add_flags`),
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


def option(default, help: str):
    """A config field with the text `--help` shows for its flag:
    `lr: float = option(2e-3, "peak learning rate (AdamW)")`."""
    return dataclasses.field(default=default, metadata={"help": help})


def leaf_fields(cls: type, prefix: str = ""):
    """(dotted name, type, dataclasses.Field) of every leaf field of dataclass `cls`, the fields of
    nested dataclasses flattened: ("train.max_batch_seconds", float, Field)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            yield from leaf_fields(kind, f"{prefix}{f.name}.")
        else:
            yield prefix + f.name, kind, f


def add_flags(parser: argparse.ArgumentParser, cls: type, default_note: str | None = None,
              only: tuple[str, ...] | None = None) -> None:
    """Add a kebab-case flag (`--section.field-name`) for every leaf field of dataclass `cls`, or
    for the fields named in `only`. Flags default to SUPPRESS, so only the ones a user gives show
    up as overrides; their help says the default, or `default_note` where the real default is
    decided later (e.g. "from the model")."""
    for name, kind, f in leaf_fields(cls):
        if only is not None and name not in only:
            continue
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = value if isinstance(value, str) and value else repr(value)
        default = f"{default_note}, else {shown}" if default_note else shown
        help_text = f.metadata.get("help", "")
        described = f"{help_text} (default: {default})" if help_text else f"(default: {default})"
        choices = typing.get_args(kind) if typing.get_origin(kind) is typing.Literal else None
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=argparse.SUPPRESS, choices=choices,
                            metavar=None if choices else _base_type(kind).__name__.upper(),
                            help=described.replace("%", "%%"))


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
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text, so not a YAML config") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({_yaml_reason(err)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _yaml_reason(err: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: what it expected, and where (1-based line:column)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


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
    """`float | None` -> float, `tuple[float, ...]` -> tuple, `int` -> int, `Literal["a", "b"]` -> str."""
    if typing.get_origin(kind) is typing.Literal:
        return type(typing.get_args(kind)[0])
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
    if typing.get_origin(kind) is typing.Literal and value not in typing.get_args(kind):
        raise ConfigError(f"{name} must be one of {', '.join(map(str, typing.get_args(kind)))}; got {value!r}")
    return value
