"""The bundled default model: it loads, transcribes speech, and `asr transcribe` uses it.

Its accuracy on real speech is benchmarks/accuracy.py's job; here WER bounds on a few
espeak-ng sentences and on a few real speechocean762 dev utterances of speakers it never
trained on catch an export that loads but no longer recognizes well (wrong vocabulary
order, feature config or weights give a WER near 100%). The real-speech test reads the
corpus from $SPEECHOCEAN762 (CI sets it where a copy is at hand) and is skipped, saying so,
where it is not set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jiwer
import pytest
import torch
from conftest import SENTENCES, save_checkpoint, synthesize, tiny_model

from asr.checkpoint import CheckpointError, load_model, read_checkpoint
from asr.cli import main
from asr.config import ConfigError
from asr.corpora.speechocean import REPORT_SPEAKERS, dev_dir
from asr.decode import GreedyDecoder, make_decoder
from asr.features import FeatureConfig
from asr.pretrained import (
    MAX_MODEL_BYTES,
    MAX_PACKAGE_BYTES,
    default_model_path,
    export_model,
)
from asr.text import normalize_text
from asr.transcribe import transcribe

PRETRAINED_SENTENCE = "open the window please"
# WER bounds, measured 2026-12-02 with the bundled model retrained for issue 15 (`pytest -s
# tests/test_pretrained.py` prints them), as upper limits with a margin, so a better model
# passes too and a broken export (near 100%) fails:
# - PRETRAINED_SENTENCE + conftest.SENTENCES (32 words, espeak-ng en-us): greedy 59.4%,
#   stored decoding (beam + the general word 3-gram) 28.1%;
# - real_dev_utterances() (16 utterances, 104 words): greedy 78.8%, stored decoding 60.6%.
MAX_GREEDY_WER = 0.75
MAX_STORED_DECODING_WER = 0.45
MAX_REAL_GREEDY_WER = 0.9
MAX_REAL_STORED_DECODING_WER = 0.75
REAL_DEV_SPEAKERS, REAL_DEV_PER_SPEAKER = 8, 2  # the first of REPORT_SPEAKERS, their first utterances


@pytest.fixture(scope="module")
def sentence_wav(tmp_path_factory):
    return synthesize(PRETRAINED_SENTENCE, tmp_path_factory.mktemp("pretrained") / "sentence.wav")


def test_bundled_model_transcribes_generated_speech(sentence_wav, speech_dir):
    path = default_model_path()
    assert path.stat().st_size < MAX_MODEL_BYTES
    assert "train_state" not in read_checkpoint(path)
    loaded = load_model(path)
    shipped = [path] + [Path(f) for f in (loaded.decoding.lm, loaded.decoding.lexicon) if f]
    assert sum(f.stat().st_size for f in shipped) < MAX_PACKAGE_BYTES
    wavs = [sentence_wav, *(speech_dir / f"utt{i}.wav" for i in range(len(SENTENCES)))]
    refs = [PRETRAINED_SENTENCE, *SENTENCES]
    assert_wer_bounds(loaded, wavs, refs, MAX_GREEDY_WER, MAX_STORED_DECODING_WER, "espeak-ng sentences")


def assert_wer_bounds(loaded, wavs, refs, max_greedy_wer, max_stored_decoding_wer, what):
    """Transcribe `wavs` greedily and with the stored decoding; each WER against `refs` must
    meet its bound (printed, so `pytest -s` shows the measured figures)."""
    for decoder, bound in ((GreedyDecoder(loaded.tokenizer), max_greedy_wer),
                           (make_decoder(loaded.decoding, loaded.tokenizer), max_stored_decoding_wer)):
        hyps = [transcribe(loaded, wav, decoder).text for wav in wavs]
        assert all(set(hyp) <= set(loaded.tokenizer.vocab[1:]) for hyp in hyps), hyps
        wer = jiwer.wer(refs, hyps)
        print(f"{type(decoder).__name__}: WER {wer:.1%} on {len(refs)} {what}")
        assert wer <= bound, list(zip(refs, hyps))


def real_dev_utterances(corpus: Path) -> list[tuple[Path, str]]:
    """(audio path, normalized transcript) of the first REAL_DEV_PER_SPEAKER dev utterances
    of the first REAL_DEV_SPEAKERS reporting speakers, from the corpus's Kaldi dev/ (or, in
    OpenSLR's archive, test/) folder."""
    def table(name: str) -> dict[str, str]:
        lines = (dev_dir(corpus) / name).read_text(encoding="utf-8").splitlines()
        return dict(line.split(maxsplit=1) for line in lines if line.strip())
    wav, text, speaker = table("wav.scp"), table("text"), table("utt2spk")
    chosen = []
    for spk in sorted(REPORT_SPEAKERS)[:REAL_DEV_SPEAKERS]:
        utts = sorted(utt for utt, s in speaker.items() if s == spk)[:REAL_DEV_PER_SPEAKER]
        chosen += [(corpus / wav[utt], normalize_text(text[utt])) for utt in utts]
    return chosen


def test_bundled_model_meets_its_wer_bounds_on_real_dev_speech():
    if not os.environ.get("SPEECHOCEAN762"):
        pytest.skip("SPEECHOCEAN762 (the folder of a copy of the corpus) is not set")
    corpus = Path(os.environ["SPEECHOCEAN762"])
    utterances = real_dev_utterances(corpus)
    assert len(utterances) == REAL_DEV_SPEAKERS * REAL_DEV_PER_SPEAKER
    assert_wer_bounds(load_model(default_model_path()), [path for path, _ in utterances],
                      [ref for _, ref in utterances], MAX_REAL_GREEDY_WER, MAX_REAL_STORED_DECODING_WER,
                      "real dev utterances")


@pytest.mark.slow
def test_transcribe_without_model_uses_bundled_one(sentence_wav):
    result = subprocess.run([sys.executable, "-m", "asr", "transcribe", str(sentence_wav)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    path, text = result.stdout.rstrip("\n").split("\t")
    assert path == str(sentence_wav) and text.strip()
    assert result.stderr == ""  # no KenLM banner ("Loading the LM will be faster...", "----5---10", "****")


@pytest.mark.slow  # a subprocess that loads the model
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


def test_export_stores_half_precision_weights_that_load_as_float32(tmp_path):
    source = training_checkpoint(tmp_path / "last.pt")
    out = export_model(source, tmp_path / "pretrained")
    stored = read_checkpoint(out)["model_state_dict"]
    assert {tensor.dtype for tensor in stored.values() if tensor.is_floating_point()} == {torch.float16}
    original, exported = load_model(source).model, load_model(out).model
    assert all(p.dtype == torch.float32 for p in exported.parameters())
    features = torch.randn(2, 50, FeatureConfig().n_mels)  # (batch, frames, mels)
    lengths = torch.tensor([50, 31])
    with torch.no_grad():
        want, _ = original(features, lengths)
        got, _ = exported(features, lengths)
    assert not torch.equal(got, want)  # rounded weights...
    assert torch.allclose(got, want, atol=1e-2)  # ...that compute nearly the same log-probs


def test_export_refuses_bad_options_and_oversize_models(tmp_path, monkeypatch):
    source = training_checkpoint(tmp_path / "last.pt")
    with pytest.raises(ConfigError, match="beam_size"):
        export_model(source, tmp_path / "a", decoding={"beam_size": "wide"})
    with pytest.raises(CheckpointError, match="lm file not found"):
        export_model(source, tmp_path / "b", lm=tmp_path / "missing.arpa")
    (tmp_path / "big.arpa").write_bytes(b"\\data\\\n" + b" " * 30_000)
    monkeypatch.setattr("asr.pretrained.MAX_PACKAGE_BYTES", 40_000)
    with pytest.raises(CheckpointError, match="model \\+ LM \\+ lexicon would be"):
        export_model(source, tmp_path / "c", lm=tmp_path / "big.arpa")
    monkeypatch.setattr("asr.pretrained.MAX_MODEL_BYTES", 10_000)
    with pytest.raises(CheckpointError, match="over the"):
        export_model(source, tmp_path / "c")
    assert not (tmp_path / "c" / "model.pt").exists() and not (tmp_path / "c" / "big.arpa").exists()


def test_export_cli_reports_errors_in_one_line(tmp_path, capsys):
    source = training_checkpoint(tmp_path / "last.pt")
    assert main(["export", str(source), "--out-dir", str(tmp_path / "d"), "--decoding", "decoder"]) == 1
    assert capsys.readouterr().err.startswith("error: --decoding expects KEY=VALUE")
    assert main(["export", str(source), "--out-dir", str(tmp_path / "d"), "--decoding", "decoder=greedy"]) == 0
    assert read_checkpoint(tmp_path / "d" / "model.pt")["decoding"] == {"decoder": "greedy"}
