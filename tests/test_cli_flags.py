"""Every `asr` command's flags, defaults, choices and help against a committed snapshot.

tests/data/cli_flags.json is what the parser offered when it was written: each command path
("train", "prepare librispeech", ...) maps to its description and its arguments (flags in
kebab-case, dest, default, choices, nargs, required, metavar, help). A difference fails here,
so a refactoring of the CLI or of the config help cannot change what users type or read.

The snapshot is meant to change on purpose: after adding, removing or rewording a flag, run
`python tests/test_cli_flags.py` to rewrite it, and commit it with the change that explains why.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).resolve().parent / "data" / "cli_flags.json"


def _shown(value):
    """A default or choice as JSON can hold it (argparse.SUPPRESS and ranges included)."""
    if value is argparse.SUPPRESS:
        return "==SUPPRESS=="
    if isinstance(value, range):
        return list(value)
    if isinstance(value, (list, tuple)):
        return [_shown(v) for v in value]
    return value if value is None or isinstance(value, (str, int, float, bool)) else repr(value)


def describe(parser: argparse.ArgumentParser, path: str = "") -> dict:
    """{command path: {"description", "arguments"}} for `parser` and every subcommand under it."""
    commands = {path: {"description": parser.description, "arguments": []}}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                commands.update(describe(sub, f"{path} {name}".strip()))
            continue
        commands[path]["arguments"].append({
            "flags": list(action.option_strings), "dest": action.dest, "default": _shown(action.default),
            "choices": None if action.choices is None else _shown(list(action.choices)),
            "nargs": action.nargs, "required": action.required, "metavar": action.metavar,
            "type": getattr(action.type, "__name__", None), "help": action.help,
            "action": type(action).__name__,
        })
    return commands


def current() -> dict:
    from asr.cli import build_parser

    return json.loads(json.dumps(describe(build_parser())))


def test_every_command_offers_the_snapshot_flags():
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    got = current()
    assert sorted(got) == sorted(expected), "commands differ"
    for command, spec in expected.items():
        assert got[command]["description"] == spec["description"], command
        got_args = {a["dest"]: a for a in got[command]["arguments"]}
        want_args = {a["dest"]: a for a in spec["arguments"]}
        assert sorted(got_args) == sorted(want_args), f"asr {command}: arguments differ"
        for dest, want in want_args.items():
            assert got_args[dest] == want, f"asr {command} {dest}"


def test_snapshot_flags_are_kebab_case():
    for command, spec in json.loads(SNAPSHOT.read_text(encoding="utf-8")).items():
        for argument in spec["arguments"]:
            for flag in argument["flags"]:
                assert "_" not in flag, f"asr {command}: {flag}"


if __name__ == "__main__":
    sys.path.insert(0, str(SNAPSHOT.parents[2]))
    SNAPSHOT.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {SNAPSHOT}")
