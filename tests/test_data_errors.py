"""A data error in a DataLoader worker ends the command at once: one `error:` line, no wait for
the worker's stop grace (asr.data.dataset.WORKER_STOP_GRACE), in every command that loads data."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ONE_THREAD_ENV

from asr.data.dataset import WORKER_STOP_GRACE


def _broken_manifest(speech_manifest: Path, tmp_path: Path) -> Path:
    """The speech manifest with one utterance's audio missing."""
    rows = [json.loads(line) for line in speech_manifest.read_text().splitlines()]
    rows[1]["audio_path"] = str(tmp_path / "gone.wav")
    out = tmp_path / "broken.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_a_missing_audio_file_with_workers_exits_at_once(command, tiny_checkpoint, speech_manifest, tmp_path):
    manifest = _broken_manifest(speech_manifest, tmp_path)
    if command == "evaluate":
        args = ["evaluate", "--model", str(tiny_checkpoint), "--manifest", str(manifest), "--jobs", "1",
                "--out-dir", str(tmp_path / "decode")]
    else:
        args = ["train", "--exp-dir", str(tmp_path / "exp"), "--train-manifest", str(manifest),
                "--model.hidden-size", "8", "--model.num-layers", "1", "--train.num-workers", "1",
                "--train.device", "cpu", "--train.max-batch-seconds", "1000"]
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "asr", *args], capture_output=True, text=True,
                            timeout=WORKER_STOP_GRACE + 60, env=ONE_THREAD_ENV)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-2000:]
    assert "gone.wav" in result.stderr and "Traceback" not in result.stderr
    assert elapsed < WORKER_STOP_GRACE / 2, f"took {elapsed:.0f} s to exit"
