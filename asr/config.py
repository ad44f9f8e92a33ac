"""Layered configuration: dataclass defaults < recipe YAML < command-line flags.

Each component owns its config dataclass (FeatureConfig next to the features,
ModelConfig next to the model, ...). A run groups them in one nested dataclass;
this module
  * turns every leaf field into a kebab-case flag (`--model.hidden-size 320`)
    whose help is the comment written after the field in its source,
  * merges a YAML file of the same nested shape, then the flags, with type checks,
  * dumps the resolved result, which training saves next to its checkpoints.

The flags are built from the dataclass's source text (`field_specs`), not from
the imported class: the modules that own the configs import torch, and `--help`
must not wait for it. Where no source is installed (a .pyc-only build), the
class is imported instead and the flags come without descriptions.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import importlib
import importlib.util
import io
import tokenize
import types
import typing
from pathlib import Path

import yaml

from asr.errors import AsrError


class ConfigError(AsrError):
    """An override that names an unknown field or has the wrong type."""


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One leaf field of a (nested) config dataclass, as its source spells it."""

    name: str  # dotted path from the top dataclass: "train.max_batch_seconds"
    type_name: str  # "float", "int", "str", "bool", "tuple", ...
    default: str  # the default as the source has it: "0.002", "(1.0,)", "None", "auto"
    help: str  # the field's comment
    choices: tuple | None = None  # the values of a Literal[...] annotation

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def field_specs(ref: str, prefix: str = "") -> list[FieldSpec]:
    """Leaf fields of the dataclass `ref` ("package.module:ClassName"), nested ones flattened
    with dotted names. Read from the source without importing the module when possible."""
    module, name = ref.split(":")
    found = _find_class(module, name)
    if found is None:
        return _imported_specs(getattr(importlib.import_module(module), name), prefix)
    node, module = found
    comments = _comments(module, node)
    specs = []
    for stmt in node.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        field_name, annotation = prefix + stmt.target.id, stmt.annotation
        default = stmt.value
        if isinstance(default, ast.Call) and _name_of(default.func) == "field":
            keywords = {k.arg: k.value for k in default.keywords}
            factory = keywords.get("default_factory")
            nested = _name_of(factory) if factory is not None else None
            if nested and _find_class(module, nested, want_dataclass=True):
                specs += field_specs(f"{module}:{nested}", f"{field_name}.")
                continue
            default = keywords.get("default", factory)
        text = "" if default is None else _shown(ast.unparse(default))
        help_text = next((comments[line] for line in range(stmt.lineno, stmt.end_lineno + 1) if line in comments), "")
        choices = None
        if isinstance(annotation, ast.Subscript) and _name_of(annotation.value) == "Literal":
            values = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
            choices = tuple(ast.literal_eval(v) for v in values)
        type_name = ast.unparse(annotation).split("|")[0].split("[")[0].strip()
        specs.append(FieldSpec(field_name, type_name, text, help_text, choices))
    return specs


def _find_class(module: str, name: str, want_dataclass: bool = False):
    """(ClassDef, defining module) of class `name` as seen from `module`, following
    `from X import name`; None if the source is not installed or the class is not found."""
    parsed = _parsed(module)
    if parsed is None:
        return None
    for stmt in parsed[0].body:
        if isinstance(stmt, ast.ClassDef) and stmt.name == name:
            is_dataclass = any(_name_of(d.func if isinstance(d, ast.Call) else d) == "dataclass"
                               for d in stmt.decorator_list)
            return (stmt, module) if is_dataclass or not want_dataclass else None
        if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0:
            for alias in stmt.names:
                if (alias.asname or alias.name) == name:
                    return _find_class(stmt.module, alias.name, want_dataclass)
    return None


def _shown(source_text: str) -> str:
    """A default as --help shows it: strings without their quotes, `float("-inf")` as -inf,
    the rest as the source has it."""
    if source_text.startswith("float(") and source_text.endswith(")"):
        source_text = source_text[len("float("):-1]
    try:
        value = ast.literal_eval(source_text)
    except ValueError:
        return source_text
    return value if isinstance(value, str) and value else source_text


@functools.cache
def _parsed(module: str) -> tuple[ast.Module, str] | None:
    """(syntax tree, source text) of `module`, read without executing it; None without source."""
    source = _source(module)
    return None if source is None else (ast.parse(source), source)


def _source(module: str) -> str | None:
    """The source text of `module` (its package's __init__ does run, the module itself does not)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    try:
        return spec.loader.get_source(module)  # works inside zip files too
    except (ImportError, AttributeError, OSError):  # a loader without sources (e.g. pytest's)
        origin = Path(spec.origin or "")
        return origin.read_text(encoding="utf-8") if origin.suffix == ".py" and origin.is_file() else None


def _name_of(node) -> str | None:
    """`field` for both `field` and `dataclasses.field`."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _comments(module: str, node: ast.ClassDef) -> dict[int, str]:
    """{line number: text of the comment ending that line} in the source of class `node` of `module`.
    Only the class's lines are tokenized: tokenizing whole modules cost every `asr` command ~0.1 s."""
    lines = _parsed(module)[1].splitlines(keepends=True)[node.lineno - 1: node.end_lineno]
    return {tok.start[0] + node.lineno - 1: tok.string.lstrip("#").strip()
            for tok in tokenize.generate_tokens(io.StringIO("".join(lines)).readline) if tok.type == tokenize.COMMENT}


def _imported_specs(cls: type, prefix: str) -> list[FieldSpec]:
    """The fallback without source: fields of the imported class, without descriptions."""
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            specs += _imported_specs(kind, f"{prefix}{f.name}.")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        choices = typing.get_args(kind) if typing.get_origin(kind) is typing.Literal else None
        specs.append(FieldSpec(prefix + f.name, _base_type(kind).__name__, repr(default), "", choices))
    return specs


def add_flags(parser: argparse.ArgumentParser, ref: str, default_note: str | None = None,
              only: tuple[str, ...] | None = None) -> None:
    """Add a kebab-case flag (`--section.field-name`) for every leaf field of the dataclass
    `ref` ("module:Class": the module is not imported), or for the fields named in `only`.
    Flags default to SUPPRESS, so only the ones a user gives show up as overrides; their
    help says the default, or `default_note` where the real default is decided later
    (e.g. "from the model")."""
    for spec in field_specs(ref):
        if only is not None and spec.name not in only:
            continue
        default = f"{default_note}, else {spec.default}" if default_note else spec.default
        described = f"{spec.help} (default: {default})" if spec.help else f"(default: {default})"
        parser.add_argument(spec.flag, dest=spec.name, default=argparse.SUPPRESS, choices=spec.choices,
                            metavar=None if spec.choices else spec.type_name.upper(),
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
