"""A plain `pip install asr` runs the default transcription path: every third-party module
that `asr transcribe` imports (beam search with the bundled LM, silero-vad on a long
recording) comes from a distribution that pyproject's core `dependencies` pull in."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ONE_THREAD_ENV
from packaging.requirements import Requirement

from asr.audio import SAMPLE_RATE

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

# Runs `asr transcribe ARGS` and prints, last, the top-level modules imported after start-up.
TRANSCRIBE_AND_LIST_MODULES = """
import json, sys
before = set(sys.modules)
from asr.cli import main
try:
    code = main(sys.argv[1:])
finally:
    print(json.dumps(sorted({name.split(".")[0] for name in set(sys.modules) - before})))
sys.exit(code)
"""


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def core_closure(pyproject: Path = PYPROJECT) -> set[str]:
    """Normalized names of the distributions that the core `dependencies` install, transitively
    (extras excluded, environment markers evaluated for this interpreter)."""
    todo = [Requirement(r) for r in tomllib.loads(pyproject.read_text())["project"]["dependencies"]]
    seen: set[str] = set()
    while todo:
        requirement = todo.pop()
        name = _normalize(requirement.name)
        if name in seen or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            todo.extend(Requirement(r) for r in metadata.requires(name) or [])
        except metadata.PackageNotFoundError:
            pass  # not installed here: nothing below it can have been imported
    return seen


def third_party_distributions(modules: list[str]) -> dict[str, set[str]]:
    """{normalized distribution: top-level modules of it} for the non-stdlib modules in `modules`;
    modules no distribution provides (the interpreter's, Cython's runtime shims) are left out."""
    provided = metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for module in modules:
        if module in sys.stdlib_module_names or module == "asr":
            continue
        for dist in provided.get(module, []):
            found.setdefault(_normalize(dist), set()).add(module)
    return found


def test_core_closure_follows_requirements(tmp_path):
    """The closure helper itself: core packages, what they require, and not the extras."""
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["soundfile", "nonexistent-dist; python_version < \'3\'"]\n'
                         '[project.optional-dependencies]\nserve = ["fastapi"]\n')
    closure = core_closure(pyproject)
    assert {"soundfile", "cffi"} <= closure  # soundfile requires cffi
    assert "fastapi" not in closure and "nonexistent-dist" not in closure
    assert third_party_distributions(["json", "yaml", "_soundfile"]) == {"pyyaml": {"yaml"},
                                                                        "soundfile": {"_soundfile"}}


@pytest.mark.slow
def test_default_transcription_imports_only_core_dependencies(tmp_path):
    """`asr transcribe` with the bundled model's stored decoding on a 25 s recording (so the
    VAD cuts it): the run succeeds and each third-party module it imports is installed by
    `pip install asr` without extras."""
    seconds = 25.0  # over max_segment_seconds (20 s): cut at pauses by silero-vad
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.2 * t) > 0)  # 2.5 s on, 2.5 s off
    wav = tmp_path / "long.wav"
    sf.write(wav, tone.astype(np.float32), SAMPLE_RATE)
    run = subprocess.run([sys.executable, "-c", TRANSCRIBE_AND_LIST_MODULES, "transcribe", str(wav)],
                         env=ONE_THREAD_ENV, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    *transcripts, modules = run.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in transcripts] == [str(wav)]
    imported = third_party_distributions(json.loads(modules))
    assert {"flashlight-text", "onnxruntime", "silero-vad", "torch"} <= imported.keys()  # the default path ran
    missing = {dist: sorted(mods) for dist, mods in imported.items() if dist not in core_closure()}
    assert not missing, f"imported by `asr transcribe` but not a core dependency: {missing}"
