"""The bundled default model: it loads, transcribes generated speech, and `asr transcribe` uses it.

No accuracy is asserted here (that is benchmarks/accuracy.py's job): only that the
shipped checkpoint is usable and its output is made of the tokenizer's characters.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import save_checkpoint, synthesize, tiny_model

from asr.checkpoint import CheckpointError, load_model, read_checkpoint
from asr.cli import main
from asr.config import ConfigError
from asr.decode import GreedyDecoder
from asr.pretrained import (
    MAX_MODEL_BYTES,
    default_model_path,
    export_model,
)
from asr.transcribe import transcribe


@pytest.fixture(scope="module")
def sentence_wav(tmp_path_factory):
    return synthesize("open the window please", tmp_path_factory.mktemp("pretrained") / "sentence.wav")


def test_bundled_model_transcribes_generated_speech(sentence_wav):
    path = default_model_path()
    assert path.stat().st_size < MAX_MODEL_BYTES
    assert "train_state" not in read_checkpoint(path)
    loaded = load_model(path)
    hyp = transcribe(loaded, sentence_wav, GreedyDecoder(loaded.tokenizer))
    assert hyp.text.strip(), "the bundled model returned an empty transcript"
    assert set(hyp.text) <= set(loaded.tokenizer.vocab[1:]), hyp.text


@pytest.mark.slow
def test_transcribe_without_model_uses_bundled_one(sentence_wav):
    result = subprocess.run([sys.executable, "-m", "asr", "transcribe", str(sentence_wav)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    path, text = result.stdout.rstrip("\n").split("\t")
    assert path == str(sentence_wav) and text.strip()
    assert result.stderr == ""  # no KenLM banner ("Loading the LM will be faster...", "----5---10", "****")


def test_a_file_that_is_not_an_lm_is_one_clean_error_line(sentence_wav, tmp_path):
    broken = tmp_path / "broken.arpa"
    broken.write_text("this is not an ARPA file\n")
    result = subprocess.run([sys.executable, "-m", "asr", "transcribe", str(sentence_wav), "--lm", str(broken)],
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {broken}")
    assert "not \\data\\" in lines[0] and ".cc" not in lines[0] and "Loading" not in lines[0]


def training_checkpoint(path):
    """A tiny model's checkpoint with a train_state (optimizer moments), as training writes last.pt."""
    return save_checkpoint(tiny_model(hidden_size=8), path,
                           train_state={"step": 7, "optimizer": {"m": torch.zeros(1000)}})


def test_export_drops_train_state_and_ships_lm(tmp_path):
    source = training_checkpoint(tmp_path / "last.pt")
    (tmp_path / "words.arpa").write_text("\\data\\\n")
    dest = tmp_path / "pretrained"
    out = export_model(source, dest, lm=tmp_path / "words.arpa", decoding={"decoder": "beam", "lm_weight": "1.5"})
    exported = read_checkpoint(out)
    assert "train_state" not in exported
    assert exported["decoding"] == {"decoder": "beam", "lm_weight": 1.5, "lm": "words.arpa"}
    assert (dest / "words.arpa").read_text() == "\\data\\\n"
    options = load_model(out).decoding
    assert options.decoder == "beam" and options.lm == str(dest.resolve() / "words.arpa")


def test_export_refuses_bad_options_and_oversize_models(tmp_path, monkeypatch):
    source = training_checkpoint(tmp_path / "last.pt")
    with pytest.raises(ConfigError, match="beam_size"):
        export_model(source, tmp_path / "a", decoding={"beam_size": "wide"})
    with pytest.raises(CheckpointError, match="lm file not found"):
        export_model(source, tmp_path / "b", lm=tmp_path / "missing.arpa")
    monkeypatch.setattr("asr.pretrained.MAX_MODEL_BYTES", 10_000)
    with pytest.raises(CheckpointError, match="over the"):
        export_model(source, tmp_path / "c")
    assert not (tmp_path / "c" / "model.pt").exists()


def test_export_cli_reports_errors_in_one_line(tmp_path, capsys):
    source = training_checkpoint(tmp_path / "last.pt")
    assert main(["export", str(source), "--out-dir", str(tmp_path / "d"), "--decoding", "decoder"]) == 1
    assert capsys.readouterr().err.startswith("error: --decoding expects KEY=VALUE")
    assert main(["export", str(source), "--out-dir", str(tmp_path / "d"), "--decoding", "decoder=greedy"]) == 0
    assert read_checkpoint(tmp_path / "d" / "model.pt")["decoding"] == {"decoder": "greedy"}
