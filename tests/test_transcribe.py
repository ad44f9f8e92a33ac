"""asr.transcribe: long audio in windows, stitched without losing or doubling words; resumable batch runs.

The 30-minute test needs an acoustic model whose right answer is known at every
moment, so it uses `ToneModel`: "speech" where each character is a short tone on
its own mel band and a deterministic model that reads those bands back from the
normalized log-mel features. Everything else is the real pipeline: the file is
read window by window, featurized with per-window CMVN, batched, greedy-decoded,
timed and stitched. A word cut by a window edge comes out truncated in that
window, so stitching has to take it from the neighbour that heard all of it.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.audio import SAMPLE_RATE, AudioError, load_audio
from asr.checkpoint import LoadedModel, load_model
from asr.cli import main
from asr.data.manifest import read_manifest
from asr.decode import GreedyDecoder
from asr.evaluate import decode_utterances
from asr.features import FeatureConfig, LogMel
from asr.model import ModelConfig, output_lengths
from asr.text import SPACE, CharTokenizer
from asr import transcribe
from asr.transcribe import TranscribeOptions, iter_transcripts, plan_windows, transcribe_file

TOKENIZER = CharTokenizer()
LETTERS = "abdeghiklmnorst"  # 15 letters + space: one mel band each, 5 bands apart
SYMBOLS = [SPACE, *LETTERS]
BANDS = list(range(4, 80, 5))  # mel bin of each symbol; a quiet tone lights at most +-3 bins
TONE_SECONDS, GAP_SECONDS = 0.06, 0.10  # each symbol: a tone, then silence (CTC needs the blank)
AMPLITUDE = 1e-4  # quiet enough that a tone's leakage stays under the log floor of other bands


def _band_frequencies() -> list[float]:
    """Frequency (Hz) of each symbol's tone: the FFT bin at the centre of its mel band."""
    filterbank = LogMel(FeatureConfig()).mel.mel_scale.fb  # (fft bins, mels)
    hz_per_bin = SAMPLE_RATE / FeatureConfig().n_fft
    return [filterbank[:, band].argmax().item() * hz_per_bin for band in BANDS]


class ToneModel(torch.nn.Module):
    """Stand-in acoustic model with CTCModel's interface: features (batch, frames, mels) ->
    (log_probs (batch, out_frames, vocab), out_lengths). An output frame emits the symbol whose
    band is above its window mean (CMVN > 0.5) in any of its 4 feature frames, else blank."""

    def __init__(self):
        super().__init__()
        self.config = ModelConfig(subsample=4, vocab_size=len(TOKENIZER))
        self.sharpness = torch.nn.Parameter(torch.tensor(20.0))  # logit of the emitted class
        self.ids = torch.tensor([TOKENIZER.vocab.index(s) for s in SYMBOLS])

    def forward(self, features, lengths):
        batch, frames, _ = features.shape
        k = self.config.subsample
        bands = torch.nn.functional.pad(features[:, :, BANDS], (0, 0, 0, (-frames) % k))  # (batch, frames', symbols)
        level = bands.reshape(batch, -1, k, len(SYMBOLS)).amax(dim=2)  # (batch, out_frames, symbols)
        best, which = level.max(dim=-1)  # (batch, out_frames)
        classes = torch.where(best > 0.5, self.ids[which], TOKENIZER.blank_id)
        logits = torch.nn.functional.one_hot(classes, len(TOKENIZER)).float() * self.sharpness
        return logits.log_softmax(dim=-1), output_lengths(lengths, k)


def _tone_speech(path: Path, seconds: float, seed: int = 0) -> list[tuple[str, float, float]]:
    """Write `seconds` of tone "speech" to `path` (24-bit FLAC); return its words as (text, start, end)."""
    rng = np.random.default_rng(seed)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(320) / 320)  # 20 ms raised cosine
    envelope = np.concatenate([ramp, np.ones(int(TONE_SECONDS * SAMPLE_RATE) - 640), ramp[::-1]])
    t = np.arange(len(envelope)) / SAMPLE_RATE
    tones = {s: AMPLITUDE * envelope * np.sin(2 * np.pi * f * t) for s, f in zip(SYMBOLS, _band_frequencies())}
    audio = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
    step = TONE_SECONDS + GAP_SECONDS
    words, now = [], 0.3
    while True:
        word = "".join(rng.choice(list(LETTERS), size=rng.integers(2, 8)))
        # Mostly short pauses; now and then a long silence, as in real recordings.
        pause = rng.uniform(4, 9) if rng.random() < 0.05 else rng.uniform(0.1, 1.2)
        if now + (len(word) + 1) * step + pause > seconds:
            break
        for i, symbol in enumerate(word + SPACE):
            start = round((now + i * step) * SAMPLE_RATE)
            audio[start : start + len(envelope)] = tones[symbol]
        words.append((word, now, now + (len(word) - 1) * step + TONE_SECONDS))
        now += (len(word) + 1) * step + pause
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_24")
    return words


def _edge_words(truth, windows):
    """Words that some window edge (other than the file's own ends) cuts in two."""
    edges = [w.start for w in windows[1:]] + [w.start + w.duration for w in windows[:-1]]
    return [i for i, (_, start, end) in enumerate(truth) if any(start < e < end for e in edges)]


@pytest.fixture(scope="module")
def thirty_minutes(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "thirty_minutes.flac"
    truth = _tone_speech(path, 30 * 60)
    return path, truth


def _tone_loaded() -> LoadedModel:
    return LoadedModel(model=ToneModel(), features=FeatureConfig(), tokenizer=TOKENIZER)


@pytest.mark.parametrize("window,overlap", [(20.0, 4.0), (7.0, 2.0)])
def test_thirty_minutes_in_windows_match_the_ground_truth_words_and_times(thirty_minutes, window, overlap):
    path, truth = thirty_minutes
    options = TranscribeOptions(window_seconds=window, overlap_seconds=overlap, batch_windows=8, jobs=2)
    windows = plan_windows(30 * 60, 0.04, options)
    boundary = _edge_words(truth, windows)
    assert len(boundary) > 50, "too few words at window edges for the test to mean anything"

    hyp = transcribe_file(_tone_loaded(), path, GreedyDecoder(TOKENIZER), options)

    assert [w.text for w in hyp.words] == [text for text, _, _ in truth]  # none lost, doubled or cut short
    assert hyp.text == " ".join(text for text, _, _ in truth)
    assert TOKENIZER.decode(hyp.tokens) == hyp.text
    for word, (text, start, end) in zip(hyp.words, truth):
        assert abs(word.start - start) <= 0.1 and abs(word.end - end) <= 0.1, (text, word, start, end)
    frame_times = [f * 0.04 for f in hyp.frames]
    assert frame_times == sorted(frame_times) and 0 <= frame_times[0] and frame_times[-1] < 30 * 60
    # Each word at a window edge appears exactly once, at its own time.
    for i in boundary:
        text, start, _ = truth[i]
        assert sum(w.text == text and abs(w.start - start) < 0.5 for w in hyp.words) == 1, truth[i]


def test_cutting_at_the_window_edge_instead_breaks_boundary_words(thirty_minutes, monkeypatch):
    """Control: the ground-truth check above does catch bad stitching. Cutting where the
    right window starts takes words from a window that heard only their end."""
    path, truth = thirty_minutes
    monkeypatch.setattr(transcribe, "choose_cut", lambda left, right, lo, hi: lo + 0.05)
    options = TranscribeOptions(window_seconds=7.0, overlap_seconds=2.0)
    hyp = transcribe_file(_tone_loaded(), path, GreedyDecoder(TOKENIZER), options)
    truth_words = [text for text, _, _ in truth]
    assert [w.text for w in hyp.words] != truth_words
    assert len(set(w.text for w in hyp.words) - set(truth_words)) > 10  # many words cut short


@pytest.mark.parametrize("duration", [0.5, 19.99, 20.0, 20.03, 20.04, 20.05, 31.7, 36.0, 37.0, 600.0, 3600.3])
def test_windows_cover_the_file_with_the_requested_overlap(duration):
    options = TranscribeOptions(window_seconds=20.0, overlap_seconds=4.0)
    windows = plan_windows(duration, 0.04, options)
    assert windows[0].start == 0 and windows[-1].duration is None  # the last one reads to the end
    if duration <= 20.0:
        assert len(windows) == 1
        return
    assert duration - windows[-1].start >= 20.0 - 1e-6  # the last window is full length too
    assert windows[0].keep_start == 0 and windows[-1].keep_end == math.inf
    for a, b in zip(windows, windows[1:]):
        assert a.duration == 20.0
        assert a.start < b.start <= a.start + 16.0 + 1e-6  # overlap >= 4 s, no gap
        assert math.isclose(b.start / 0.04, round(b.start / 0.04), abs_tol=1e-6)  # on the frame grid
        # Each keeps all but the outer quarter of an overlap, so the kept spans still overlap.
        overlap = a.start + 20.0 - b.start
        assert math.isclose(b.keep_start, b.start + overlap / 4, abs_tol=1e-5)
        assert math.isclose(a.keep_end, a.start + 20.0 - overlap / 4, abs_tol=1e-5)


def test_bad_window_options_are_config_errors():
    from asr.config import ConfigError

    with pytest.raises(ConfigError):
        TranscribeOptions(window_seconds=10.0, overlap_seconds=6.0)
    with pytest.raises(ConfigError):
        TranscribeOptions(jobs=0)


# ---- a real (tiny, untrained) CTCModel -------------------------------------------------


def test_a_file_shorter_than_a_window_is_decoded_exactly_as_evaluate_does(tiny_checkpoint, speech_manifest):
    """One window = one utterance: same features and per-utterance CMVN as training and evaluation."""
    loaded = load_model(tiny_checkpoint)
    decoder = GreedyDecoder(loaded.tokenizer)
    utterances = read_manifest(speech_manifest)
    reference = decode_utterances(loaded.model, loaded.features, utterances, decoder)
    for utt in utterances:
        hyp = transcribe_file(loaded, utt.audio_path, decoder)
        assert (hyp.tokens, hyp.frames) == (reference[utt.id].tokens, reference[utt.id].frames)


def test_real_model_on_three_minutes_runs_window_by_window(tiny_checkpoint, speech_dir, tmp_path, monkeypatch):
    """A few minutes of speech through the real model: every window is read on its own
    (never the whole file), features are the window's own LogMel (per-window CMVN), and the
    stitched words are in order and inside the audio."""
    sentences = [load_audio(p) for p in sorted(speech_dir.glob("*.wav"))]
    pause = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    audio = np.concatenate([np.concatenate([s, pause]) for s in sentences] * 20)[: 180 * SAMPLE_RATE]
    path = tmp_path / "three_minutes.wav"
    sf.write(path, audio, SAMPLE_RATE)

    reads = []
    monkeypatch.setattr(transcribe, "load_audio", lambda p, offset=0.0, duration=None:
                        reads.append((offset, duration)) or load_audio(p, offset, duration))
    loaded = load_model(tiny_checkpoint)
    options = TranscribeOptions(window_seconds=12.0, overlap_seconds=3.0, batch_windows=4)
    hyp = transcribe_file(loaded, path, GreedyDecoder(loaded.tokenizer), options)

    windows = plan_windows(180.0, loaded.frame_seconds, options)
    assert sorted(reads) == [(w.start, w.duration) for w in windows]
    assert all(d is None or d <= 12.0 for _, d in reads)
    starts = [w.start for w in hyp.words]
    assert starts == sorted(starts) and all(0 <= w.start < w.end <= 180.0 + 0.04 for w in hyp.words)
    assert hyp.text == " ".join(w.text for w in hyp.words)


def test_a_file_failing_midway_is_one_error_in_its_place(tiny_checkpoint, speech_dir, tmp_path, monkeypatch):
    """A window that cannot be read fails its file only; results still come in input order."""
    short = sorted(speech_dir.glob("*.wav"))
    long = tmp_path / "long.wav"
    sf.write(long, np.concatenate([load_audio(p) for p in short] * 8), SAMPLE_RATE)

    def flaky(path, offset=0.0, duration=None):
        if Path(path) == long and offset > 0:
            raise AudioError(path, "read error")
        return load_audio(path, offset, duration)

    monkeypatch.setattr(transcribe, "load_audio", flaky)
    loaded = load_model(tiny_checkpoint)
    paths = [short[0], long, short[1]]
    options = TranscribeOptions(window_seconds=6.0, overlap_seconds=1.0, batch_windows=3, jobs=2)
    results = list(iter_transcripts(loaded, paths, GreedyDecoder(loaded.tokenizer), options))
    assert [path for path, _ in results] == paths
    assert [type(result).__name__ for _, result in results] == ["Hypothesis", "AudioError", "Hypothesis"]
    assert str(results[1][1]).startswith(str(long))


# ---- batch runs: output as it goes, kill, resume ---------------------------------------


@pytest.fixture
def many_files(speech_dir, tmp_path) -> Path:
    """A folder of 240 short files (links to the espeak sentences) and one corrupt file last."""
    folder = tmp_path / "in"
    folder.mkdir()
    sources = sorted(speech_dir.glob("*.wav"))
    for i in range(240):
        (folder / f"f{i:03d}.wav").symlink_to(sources[i % len(sources)])
    (folder / "zz_corrupt.wav").write_bytes(b"RIFF not really a wav file")
    return folder


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_killed_batch_run_resumes_without_losing_or_repeating_a_file(tiny_checkpoint, many_files, tmp_path):
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "asr", "transcribe", str(many_files), "--model", str(tiny_checkpoint),
               "--format", "jsonl", "--output", str(out), "--jobs", "2"]
    expected = sorted(str(p) for p in many_files.glob("f*.wav"))

    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (out.exists() and out.read_text().count("\n") >= 5):
        assert proc.poll() is None and time.monotonic() < deadline, "run ended before it could be killed"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = _lines(out)  # every line whole (json.loads would fail on a torn one)
    assert 5 <= len(killed) < len(expected), "the run was not interrupted midway"
    assert len({row["file"] for row in killed}) == len(killed)

    # A crash in the middle of a write leaves a torn last line; --resume drops it.
    with open(out, "a") as f:
        f.write('{"file": "' + expected[-1])

    result = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1  # the corrupt file failed ...
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "zz_corrupt.wav" in errors[0]
    rows = _lines(out)
    files = [row["file"] for row in rows]
    assert sorted(files) == expected  # ... and every other file is there exactly once
    assert rows[: len(killed)] == killed  # what the killed run finished was kept, not redone
    by_file = {row["file"]: row["text"] for row in rows}
    assert all(by_file[f] == by_file[expected[i % 6]] for i, f in enumerate(expected))  # same audio, same text

    again = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=120)
    assert _lines(out) == rows  # nothing left to do but the corrupt file, which fails again
    assert again.returncode == 1 and "zz_corrupt.wav" in again.stderr


def test_output_is_refused_rather_than_overwritten(tiny_checkpoint, speech_dir, tmp_path, capsys):
    out = tmp_path / "out.txt"
    out.write_text("earlier\tresults\n")
    args = ["transcribe", str(speech_dir), "--model", str(tiny_checkpoint), "--output", str(out)]
    assert main(args) == 1
    assert "already exists" in capsys.readouterr().err and out.read_text() == "earlier\tresults\n"
    assert main(["transcribe", str(speech_dir), "--model", str(tiny_checkpoint), "--resume"]) == 1
    assert "--resume needs --output" in capsys.readouterr().err


def test_without_output_each_file_is_printed_in_order(tiny_checkpoint, speech_dir, capsys):
    assert main(["transcribe", str(speech_dir), "--model", str(tiny_checkpoint), "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["file"] for row in rows] == sorted(str(p) for p in speech_dir.glob("*.wav"))


def test_txt_output_resumes_too(tiny_checkpoint, speech_dir, tmp_path, capsys):
    out = tmp_path / "out.txt"
    files = sorted(str(p) for p in speech_dir.glob("*.wav"))
    out.write_text(f"{files[0]}\tdone before\n")
    args = ["transcribe", str(speech_dir), "--model", str(tiny_checkpoint), "--output", str(out), "--resume"]
    assert main(args) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == f"{files[0]}\tdone before"
    assert sorted(line.split("\t")[0] for line in lines) == files
