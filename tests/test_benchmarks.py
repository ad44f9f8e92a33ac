"""benchmarks/ is a package run as `python -m benchmarks.NAME`: every module imports as benchmarks.NAME,
none edits sys.path, the worker files run by path import nothing of it, and the shared recordings
helper joins utterances as both long-audio benchmarks need. The benchmarks themselves are not run.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.audio import SAMPLE_RATE
from asr.data.manifest import Utterance

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
# Run by path in another interpreter (the peers' venvs) or against another checkout's asr (startup_parts):
# standalone files that must not import the package.
WORKERS = {"peer_worker", "pyctcdecode_worker", "startup_parts"}
SOURCES = sorted(BENCHMARKS.glob("*.py"))
MODULES = sorted(p.stem for p in SOURCES if p.stem not in WORKERS | {"__init__"})


def test_the_package_and_its_workers_are_all_there():
    assert {"common", "recordings", "transcribe", "long_audio", "train_step"} <= set(MODULES)
    assert all((BENCHMARKS / f"{name}.py").is_file() for name in WORKERS)


@pytest.mark.parametrize("name", MODULES)
def test_every_benchmark_imports_as_a_module_of_the_package(name):
    module = importlib.import_module(f"benchmarks.{name}")  # imports only: main() is not run
    assert Path(module.__file__).resolve() == BENCHMARKS / f"{name}.py"
    if 'if __name__ == "__main__":' in Path(module.__file__).read_text():
        assert callable(module.main)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_benchmark_edits_sys_path_or_silences_late_imports(path):
    source = path.read_text()
    uses = [node.lineno for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Attribute)
            and node.attr == "path" and isinstance(node.value, ast.Name) and node.value.id == "sys"]
    assert not uses, f"{path.name} uses sys.path on lines {uses}"
    assert "noqa: E402" not in source
    assert not re.search(r"sys\.executable,\s*__file__", source), f"{path.name} runs itself by path, not with -m"


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_workers_import_nothing_of_the_package(name):
    tree = ast.parse((BENCHMARKS / f"{name}.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and not node.level}
    assert not imported & ({"benchmarks"} | {p.stem for p in SOURCES})
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))


@pytest.mark.slow  # a fresh interpreter importing torch
def test_a_benchmark_starts_with_python_m():
    result = subprocess.run([sys.executable, "-m", "benchmarks.train_step", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--steps" in result.stdout and "Traceback" not in result.stderr


def tone_utterances(folder: Path, seconds: list[float]) -> list[Utterance]:
    """One quiet-then-loud tone file per duration (its quietest 100 ms is at amplitude 0.01)."""
    utterances = []
    for i, duration in enumerate(seconds):
        t = np.arange(round(duration * SAMPLE_RATE)) / SAMPLE_RATE
        audio = (np.sin(2 * np.pi * 220 * t) * np.where(t < 0.2, 0.01, 0.5)).astype(np.float32)
        path = folder / f"u{i}.wav"
        sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
        utterances.append(Utterance(f"u{i}", str(path), duration, f"word{i}", "s"))
    return utterances


def test_leading_utterances_takes_whole_utterances_until_the_minutes_are_reached(tmp_path):
    from benchmarks.recordings import leading_utterances

    utterances = tone_utterances(tmp_path, [20.0, 20.0, 20.0, 20.0])
    assert [u.id for u in leading_utterances(utterances, 0.5)] == ["u0", "u1"]
    assert [u.id for u in leading_utterances(utterances, 1.0)] == ["u0", "u1", "u2"]
    with pytest.raises(SystemExit, match="only 1.3 min"):
        leading_utterances(utterances, 2.0)


def test_join_utterances_back_to_back_and_with_seeded_room_tone_pauses(tmp_path):
    from benchmarks.recordings import join_utterances

    utterances = tone_utterances(tmp_path, [0.5, 0.8, 0.3])
    reference = join_utterances(utterances, tmp_path / "plain.wav")
    assert reference == "word0 word1 word2"
    assert sf.info(tmp_path / "plain.wav").frames == round(1.6 * SAMPLE_RATE)

    join_utterances(utterances, tmp_path / "a.wav", pauses=(0.2, 2.0), seed=3)
    join_utterances(utterances, tmp_path / "b.wav", pauses=(0.2, 2.0), seed=3)
    join_utterances(utterances, tmp_path / "c.wav", pauses=(0.2, 2.0), seed=4)
    joined, _ = sf.read(tmp_path / "a.wav", dtype="float32")
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert (tmp_path / "a.wav").read_bytes() != (tmp_path / "c.wav").read_bytes()
    assert 1.6 + 3 * 0.2 <= len(joined) / SAMPLE_RATE <= 1.6 + 3 * 2.0
    pause = joined[round(0.5 * SAMPLE_RATE): round(0.7 * SAMPLE_RATE)]  # the first 0.2 s after u0: room tone
    assert 0.003 < np.sqrt(np.mean(pause ** 2)) < 0.03  # noise at u0's quietest level (0.01 / sqrt 2), not silence
