"""docs/tutorial.md cannot go stale: its commands are docs/tutorial/run.sh's, and run.sh runs here.

The script runs end to end with a small budget (a few dozen utterances, a few steps): every stage
must succeed and leave its pictures and its report. The tutorial's command blocks must be the
script's own lines, so that what a reader copies is what this test ran.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ONE_THREAD_ENV

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "tutorial" / "run.sh"
TUTORIAL = ROOT / "docs" / "tutorial.md"
PICTURES = ("curves.png", "epoch1.png", "epoch3.png", "greedy.png", "beam.png")


def commands(text: str) -> list[str]:
    """The `asr ...` commands in `text`, each with its continuation lines joined."""
    joined = re.sub(r"\\\n\s*", "", text)
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("asr ")]


def test_the_tutorial_quotes_the_script():
    quoted = commands("\n".join(re.findall(r"```(?:sh|bash)\n(.*?)```", TUTORIAL.read_text(), re.S)))
    script = commands(SCRIPT.read_text())
    assert quoted, "no asr commands in docs/tutorial.md"
    assert set(script) <= set(quoted), "a command of run.sh is missing from the tutorial"
    assert set(quoted) <= set(script), "the tutorial shows a command that run.sh does not run"


def test_committed_pictures_are_there_and_small():
    for name in PICTURES:
        path = TUTORIAL.parent / "tutorial" / name
        assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size < 300_000, name
        assert f"tutorial/{name}" in TUTORIAL.read_text(), f"docs/tutorial.md does not show {name}"


@pytest.mark.slow
def test_the_tutorial_runs_with_a_small_budget(tmp_path):
    if subprocess.run(["which", "espeak-ng"], capture_output=True).returncode:
        pytest.skip("espeak-ng is not installed (make install puts it there)")
    env = {**ONE_THREAD_ENV, "STEPS": "16", "COUNT": "24", "DEV_COUNT": "4", "WORK": str(tmp_path / "work"),
           "PICTURES": str(tmp_path / "pictures"), "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    for name in PICTURES:
        assert (tmp_path / "pictures" / name).read_bytes()[:4] == b"\x89PNG", name
    report = (tmp_path / "work" / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 4  # every dev utterance shown: 4 < 20
    assert "finished at step 16" in run.stdout
