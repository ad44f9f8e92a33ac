"""Data errors: in training a DataLoader worker's error ends the run at once (one `error:` line, no
wait for the worker's stop grace, asr.data.dataset.WORKER_STOP_GRACE); `asr evaluate` reports each
unreadable utterance, scores the rest and says how many it skipped."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ONE_THREAD_ENV

from asr.cli import main
from asr.data.dataset import WORKER_STOP_GRACE


def _broken_manifest(speech_manifest: Path, tmp_path: Path) -> Path:
    """The speech manifest with one utterance's audio missing."""
    rows = [json.loads(line) for line in speech_manifest.read_text().splitlines()]
    rows[1]["audio_path"] = str(tmp_path / "gone.wav")
    out = tmp_path / "broken.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def test_a_missing_audio_file_with_workers_ends_training_at_once(speech_manifest, tmp_path):
    manifest = _broken_manifest(speech_manifest, tmp_path)
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


@pytest.mark.parametrize("jobs", ["0", "1"])
def test_evaluate_reports_unreadable_utterances_and_scores_the_rest(jobs, tiny_checkpoint, speech_manifest, tmp_path,
                                                                    capsys):
    manifest = _broken_manifest(speech_manifest, tmp_path)
    assert main(["evaluate", "--model", str(tiny_checkpoint), "--manifest", str(manifest), "--jobs", jobs]) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "gone.wav" in errors[0]
    assert "(5 utterances" in captured.out and "1 skipped" in captured.out
    out_dir = tmp_path / f"decode-{tiny_checkpoint.stem}"  # beside the manifest, not the model
    summary = json.loads((out_dir / "wer-summary-broken.json").read_text())
    assert summary["utterances"] == 5 and len(summary["skipped"]) == 1
    assert not (tiny_checkpoint.parent / "decode").exists()
