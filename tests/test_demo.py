"""`asr demo`: synthesizes its own sentences, transcribes them, prints each pair and the WER."""

from __future__ import annotations

import io
import shutil

import pytest

from asr.cli import main
from asr.demo import SAMPLES, run_demo


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_demo_prints_every_sentence_and_the_scores(tmp_path):
    out = io.StringIO()
    summary = run_demo(audio_dir=tmp_path, out=out)
    text = out.getvalue()
    assert summary["utterances"] == len(SAMPLES) == len(list(tmp_path.glob("*.wav")))
    assert summary["words"] == sum(len(sentence.split()) for sentence, _ in SAMPLES)
    for sentence, _ in SAMPLES:
        assert f"ref: {sentence}\n" in text
    assert text.count("hyp: ") == len(SAMPLES)
    assert f"WER {summary['wer']:.1%}  CER {summary['cer']:.1%}" in text


def test_demo_without_espeak_is_one_clear_error(monkeypatch, capsys):
    monkeypatch.setattr("asr.demo.shutil.which", lambda name: None)
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: espeak-ng is not installed") and err.count("\n") == 1
