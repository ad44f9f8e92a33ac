"""The import graph of asr/ against the layers written in docs/design.md ("Import layers").

The graph is read from the source with `ast`, not by importing: each `import asr...` /
`from asr... import ...` is an edge, marked "top" (runs when the module is imported),
"function" (inside a function: runs when called) or "typing" (under `if TYPE_CHECKING:`).
Checked: every module of asr/ is in exactly one layer; no import of any kind goes to a
higher layer; no cycle among the imports, whatever their kind (a function-level import that
closes a loop is a cycle all the same, only deferred); the CLI imports no job module at the
top; and no function in asr/ is longer than MAX_FUNCTION_LINES.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "asr"
DESIGN = ROOT / "docs" / "design.md"
MAX_FUNCTION_LINES = 80  # longer than a screen: split it into named steps


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str  # "top", "function" or "typing"
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node: ast.Import | ast.ImportFrom, name: str, path: Path, known: set[str]) -> list[str]:
    """The asr modules an import statement loads (`from pkg import sub` loads pkg.sub)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:  # relative: resolved against this module's package
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def _imports(node: ast.AST, kind: str = "top"):
    """(import statement, kind) for every import under `node`."""
    for child in ast.iter_child_nodes(node):
        inner = kind
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and kind == "top":
            inner = "function"
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            inner = "typing"
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, inner
        yield from _imports(child, inner)


def import_edges() -> list[Edge]:
    known = set(modules())
    edges = []
    for name, path in modules().items():
        for statement, kind in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _targets(statement, name, path, known):
                if target == "asr" or target.startswith("asr."):
                    edges.append(Edge(name, target, kind, statement.lineno))
    return list(dict.fromkeys(edges))  # `from m import a, b` is one edge


def documented_layers() -> list[tuple[str, list[str]]]:
    """[(layer title, module patterns)] from the table under "## Import layers", lowest first."""
    section = DESIGN.read_text(encoding="utf-8").split("## Import layers", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+ [^|]+?) \| (.+?) \|$", section, re.MULTILINE)
    return [(title, re.findall(r"`([^`]+)`", cells)) for title, cells in rows]


def layer_of() -> dict[str, int]:
    """{module: layer index} for every module of asr/; fails on one in no layer or in two."""
    layers = documented_layers()
    assert len(layers) >= 5, f"no layer table found in {DESIGN}"
    found, problems = {}, []
    for name in modules():
        matches = [i for i, (_, patterns) in enumerate(layers)
                   if any(name == p or (p.endswith(".*") and (name == p[:-2] or fnmatch(name, p))) for p in patterns)]
        if len(matches) != 1:
            problems.append(f"{name}: in {len(matches)} layers of docs/design.md")
        else:
            found[name] = matches[0]
    assert not problems, "\n".join(problems)
    return found


def test_the_layer_table_names_only_real_modules():
    names = set(modules())
    for title, patterns in documented_layers():
        for pattern in patterns:
            assert (pattern[:-2] if pattern.endswith(".*") else pattern) in names, f"{title}: {pattern} is no module"


def test_no_module_imports_a_layer_above_it():
    layers, titles = layer_of(), [title for title, _ in documented_layers()]
    upward = [f"{e.source} (layer {titles[layers[e.source]]}) imports {e.target} (layer {titles[layers[e.target]]}) "
              f"at line {e.line}, {e.kind}-level"
              for e in import_edges() if layers[e.target] > layers[e.source]]
    assert not upward, "\n".join(upward)


def test_imports_have_no_cycle():
    """Top-level, function-level and typing imports together form no cycle."""
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for e in import_edges():
        if e.target != e.source:
            graph[e.source].add(e.target)
    # A package's __init__ runs before its submodules, so importing `asr.x.y` also runs `asr.x`.
    for name in graph:
        parent = name.rpartition(".")[0]
        if parent:
            graph[name].add(parent)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_the_checker_sees_top_function_and_typing_imports():
    """The graph this file checks is the one the code has: known edges of each kind."""
    edges = {(e.source, e.target, e.kind) for e in import_edges()}
    assert ("asr.features", "asr.audio", "top") in edges
    assert ("asr.lm", "asr.corpora.download", "function") in edges
    assert ("asr.synth.corpus", "asr.synth.voices", "top") in edges
    snippet = ast.parse("import asr.a\nif TYPE_CHECKING:\n    import asr.b\ndef f():\n    import asr.c\n")
    assert [kind for _, kind in _imports(snippet)] == ["top", "typing", "function"]
    assert ("asr.checkpoint", "asr", "top") in edges  # `from asr import __version__`


def test_cli_imports_only_the_foundation_at_the_top():
    """`asr --help` stays instant and torch-free: each subcommand imports its modules when it runs."""
    layers = layer_of()
    cli = {name for name in modules() if name == "asr.cli" or name.startswith("asr.commands")}
    top = sorted({e.target for e in import_edges() if e.source in cli and e.kind == "top"} - cli)
    assert all(layers[t] == 0 for t in top), top
    lazy = {e.target for e in import_edges() if e.source in cli and e.kind == "function"}
    assert {"asr.train", "asr.evaluate", "asr.transcribe", "asr.serve"} <= lazy


def test_no_function_is_longer_than_a_screen():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name} (line {node.lineno}): {lines} lines")
    assert not long, f"longer than {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)
