"""asr.transcribe: long audio cut at pauses, words neither lost nor doubled; many inputs and outputs.

The 30-minute test needs an acoustic model whose right answer is known at every
moment, so it uses `ToneModel`: "speech" where each character is a short tone on
its own mel band and a deterministic model that reads those bands back from the
normalized log-mel features, with `ToneVAD`, which calls a frame speech where a tone
sounds. Everything else is the real pipeline: the file streams through the VAD, is
cut into segments at its pauses, each segment is read and featurized on its own,
batched, greedy-decoded, timed in the recording and joined. Silero itself is tested
on espeak-ng speech: segment boundaries against the known pauses, nothing of a
sentence left out. (The tiny model overfit on those sentences cannot stand in for a
real one here: shifting its input by 10 ms garbles its transcript.)
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SENTENCES, signal_after

from asr import transcribe
from asr.audio import SAMPLE_RATE, AudioError, load_audio
from asr.checkpoint import LoadedModel, load_model
from asr.cli import main
from asr.data.manifest import read_manifest
from asr.decode import GreedyDecoder, Hypothesis
from asr.evaluate import decode_utterances
from asr.features import FeatureConfig, LogMel
from asr.model import ModelConfig, output_lengths
from asr.text import SPACE, CharTokenizer
from asr.transcribe import Recording, TranscribeOptions, iter_transcripts, plan_segments
from asr.vad import VAD_INSTALL, Region, SegmentOptions, VadUnavailable, group_regions, load_vad, speech_regions

TOKENIZER = CharTokenizer()
LETTERS = "abdeghiklmnorst"  # 15 letters + space: one mel band each, 5 bands apart
SYMBOLS = [SPACE, *LETTERS]
BANDS = list(range(4, 80, 5))  # mel bin of each symbol; a quiet tone lights at most +-3 bins
TONE_SECONDS, GAP_SECONDS = 0.06, 0.10  # each symbol: a tone, then silence (CTC needs the blank)
AMPLITUDE = 1e-4  # quiet enough that a tone's leakage stays under the log floor of other bands


def _band_frequencies() -> list[float]:
    """Frequency (Hz) of each symbol's tone: the FFT bin at the centre of its mel band."""
    filterbank = LogMel(FeatureConfig()).filterbank  # (fft bins, mels)
    hz_per_bin = SAMPLE_RATE / FeatureConfig().n_fft
    return [filterbank[:, band].argmax().item() * hz_per_bin for band in BANDS]


class ToneModel(torch.nn.Module):
    """Stand-in acoustic model with CTCModel's interface: features (batch, frames, mels) ->
    (log_probs (batch, out_frames, vocab), out_lengths). An output frame emits the symbol whose
    band is above its segment mean (CMVN > 0.5) in any of its 4 feature frames, else blank."""

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


class ToneVAD:
    """Stand-in for SileroVAD: a 32 ms frame is speech (1.0) if any tone sounds in it, else 0.0."""

    frame_seconds = 512 / SAMPLE_RATE

    def probabilities(self, blocks):
        pending = np.zeros(0, dtype=np.float32)
        for block in itertools.chain(blocks, [np.zeros(511, dtype=np.float32)]):  # flushes a last partial frame
            pending = np.concatenate([pending, block])
            count = len(pending) // 512
            frames = pending[: count * 512].reshape(count, 512)
            yield from (np.abs(frames).max(axis=1) > AMPLITUDE / 10).astype(float).tolist()
            pending = pending[count * 512:]


@pytest.fixture(scope="module")
def thirty_minutes(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "thirty_minutes.flac"
    truth = _tone_speech(path, 30 * 60)
    return path, truth


def _tone_loaded() -> LoadedModel:
    return LoadedModel(model=ToneModel(), features=FeatureConfig(), tokenizer=TOKENIZER)


def test_thirty_minutes_cut_at_pauses_match_the_ground_truth_words_and_times(thirty_minutes, monkeypatch):
    path, truth = thirty_minutes
    monkeypatch.setattr(transcribe, "load_vad", lambda name: ToneVAD())
    reads = []
    monkeypatch.setattr(transcribe, "load_audio", lambda p, offset=0.0, duration=None:
                        reads.append((offset, duration)) or load_audio(p, offset, duration))
    # A two-letter tone word alone is 0.18 s of "speech", less than any spoken word (the default
    # min_speech_seconds drops it as a click).
    options = TranscribeOptions(segments=SegmentOptions(min_speech_seconds=0.1), batch_segments=8, jobs=2)

    hyp = transcribe.transcribe(_tone_loaded(), path, GreedyDecoder(TOKENIZER), options)

    assert [w.text for w in hyp.words] == [text for text, _, _ in truth]  # none lost, doubled or cut short
    assert hyp.text == " ".join(text for text, _, _ in truth)
    assert TOKENIZER.decode(hyp.tokens) == hyp.text
    for word, (text, start, end) in zip(hyp.words, truth):
        assert abs(word.start - start) <= 0.1 and abs(word.end - end) <= 0.1, (text, word, start, end)
    # Memory stays flat: the file was never read whole, each segment is at most 20 s (+ pads) ...
    assert len(reads) > 80 and max(d for _, d in reads) <= 20.0 + 2 * 0.3 + 0.1
    # ... segments do not overlap, and long silences (4-9 s pauses) were not decoded.
    spans = sorted((o, o + d) for o, d in reads)
    assert all(a_end <= b_start + 1e-6 for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
    long_pauses = sum(b[1] - a[2] for a, b in zip(truth, truth[1:]) if b[1] - a[2] > 4)
    assert sum(d for _, d in reads) < 30 * 60 - 0.8 * long_pauses


def test_the_model_starts_before_a_long_recording_is_read_and_the_reader_stays_close(thirty_minutes, monkeypatch):
    """Steps 1-3 stream: the first model call comes before the VAD has seen the recording's end,
    and the reader is never more than a bounded number of segments ahead of the model."""
    path, _ = thirty_minutes
    events = []  # ("read", end second of the block) | ("model", segments in the call) | ("segment", 1)
    blocks = transcribe.Recording.blocks
    monkeypatch.setattr(transcribe.Recording, "blocks", lambda self: (
        events.append(("read", len(block))) or block for block in blocks(self)))
    featurize, run_model = transcribe.featurize, transcribe.run_model
    monkeypatch.setattr(transcribe, "featurize", lambda *a: events.append(("segment", 1)) or featurize(*a))
    monkeypatch.setattr(transcribe, "run_model", lambda loaded, segments: events.append(
        ("model", len(segments))) or run_model(loaded, segments))
    monkeypatch.setattr(transcribe, "load_vad", lambda name: ToneVAD())
    options = TranscribeOptions(segments=SegmentOptions(min_speech_seconds=0.1), batch_segments=4, jobs=1)

    transcribe.transcribe(_tone_loaded(), path, GreedyDecoder(TOKENIZER), options)

    kinds = [kind for kind, _ in events]
    assert kinds.index("model") < len(kinds) - 1 - kinds[::-1].index("read")  # a model call before the last block
    featurized = modelled = 0
    for kind, count in events:
        featurized += count if kind == "segment" else 0
        modelled += count if kind == "model" else 0
        # the queue (2 x batch_segments), the batch being gathered, one segment in hand
        assert featurized - modelled <= 2 * 4 + 4 + 1


def test_segments_end_at_pauses_or_at_the_longest_one():
    """group_regions on made-up VAD regions (frames of 0.1 s): pauses of >= min_pause end a
    segment, a segment longer than max is cut at its longest pause, short blips are dropped,
    and pads reach at most half-way into a pause."""
    options = SegmentOptions(min_pause_seconds=0.5, max_segment_seconds=3.0, pad_seconds=0.2,
                             min_speech_seconds=0.25)
    regions = [Region(10, 20), Region(22, 30),  # 1.0-3.0 s, one 0.2 s pause inside
               Region(40, 41),  # 4.0-4.1 s: a click (0.1 s of speech), dropped
               Region(60, 70), Region(71, 75), Region(78, 80), Region(81, 95)]  # 2.1 s + 0.3 s pause + ...
    segments = [(round(a, 3), round(b, 3)) for a, b in group_regions(regions, 0.1, options)]
    assert segments == [(0.8, 3.2),  # one segment, padded 0.2 s on each side
                        (5.8, 7.65),  # 6.0-7.5 s: the 7.5-7.8 pause was the longest of a 3.5 s group
                        (7.65, 9.7)]  # ... pads meet half-way into it
    long_run = list(speech_regions([0.9] * 40 + [0.2] * 5 + [0.9] * 100, max_frames=50, threshold=0.5))
    assert long_run[0] == Region(0, 40) and all(r.end - r.start <= 50 for r in long_run)
    assert sum(r.end - r.start for r in long_run) == 140  # cut without a pause, nothing lost


def test_speech_starts_at_threshold_and_ends_below_it_minus_the_hysteresis():
    probs = [0.1, 0.6, 0.4, 0.36, 0.3, 0.2, 0.55, 0.2]
    assert list(speech_regions(probs, max_frames=100, threshold=0.5)) == [Region(1, 4), Region(6, 7)]


def _silero_or_skip():
    try:
        return load_vad("silero")
    except VadUnavailable as err:
        pytest.skip(str(err))


def test_silero_streamed_in_blocks_equals_silero_on_the_whole_recording(speech_dir):
    """Our block-wise run of the model (state carried between blocks) against silero-vad's own
    whole-array function, on odd block sizes."""
    from silero_vad import load_silero_vad

    vad = _silero_or_skip()
    audio = np.concatenate([load_audio(p) for p in sorted(speech_dir.glob("*.wav"))])
    reference = load_silero_vad(sequence=True).audio_forward(audio)  # (frames,)
    for size in (1000, 16000 * 7 + 3, len(audio)):
        blocks = (audio[i: i + size] for i in range(0, len(audio), size))
        assert np.allclose(list(vad.probabilities(blocks)), reference, atol=1e-6)


def test_silero_reads_the_audio_one_block_at_a_time():
    """The VAD pulls a block only when it needs it: a long recording is never held whole."""
    vad = _silero_or_skip()
    pulled = []

    def blocks():
        for i in range(100):  # 50 minutes of 30 s blocks
            pulled.append(i)
            yield np.zeros(30 * SAMPLE_RATE, dtype=np.float32)

    probabilities = vad.probabilities(blocks())
    next(probabilities)
    assert len(pulled) == 1


@pytest.fixture(scope="module")
def sentences_with_pauses(speech_dir, tmp_path_factory):
    """The six espeak sentences three times over, with random 0.6-3 s pauses and one 10 s
    silence: (wav path, [(sentence, speech start, speech end)] with the true speech edges
    (first and last 10 ms frame within 40 dB of the sentence's loudest))."""
    rng = np.random.default_rng(0)
    clips = [(text, load_audio(speech_dir / f"utt{i}.wav")) for i, text in enumerate(SENTENCES)] * 3
    audio, truth, now = [], [], 0.0
    for k, (text, clip) in enumerate(clips):
        rms = np.sqrt((clip[: len(clip) // 160 * 160].reshape(-1, 160) ** 2).mean(axis=1))
        speech = np.nonzero(rms > 0.01 * rms.max())[0]
        truth.append((text, now + speech[0] * 0.01, now + (speech[-1] + 1) * 0.01))
        pause = 10.0 if k == 8 else rng.uniform(0.6, 3.0)
        audio += [clip, np.zeros(round(pause * SAMPLE_RATE), dtype=np.float32)]
        now += len(clip) / SAMPLE_RATE + round(pause * SAMPLE_RATE) / SAMPLE_RATE
    path = tmp_path_factory.mktemp("pauses") / "sentences.wav"
    sf.write(path, np.concatenate(audio), SAMPLE_RATE)
    return path, truth


def test_silero_finds_the_pauses_between_sentences(sentences_with_pauses):
    """One segment per sentence; each holds all of its sentence, and its edges are within
    100 ms of the speech edges once the pad is taken off; the 10 s silence is not decoded."""
    path, truth = sentences_with_pauses
    options = SegmentOptions()
    segments = list(plan_segments(Recording(path), _silero_or_skip(), options))
    assert len(segments) == len(truth)
    for (start, end), (text, speech_start, speech_end) in zip(segments, truth):
        assert start <= speech_start and speech_end <= end, text  # nothing of the sentence lost
        assert start + options.pad_seconds >= speech_start - 0.1, text
        assert end - options.pad_seconds <= speech_end + 0.1, text
    assert sum(end - start for start, end in segments) < sf.info(path).duration - 15


def test_an_array_and_its_file_give_the_same_transcript(tiny_checkpoint, sentences_with_pauses):
    path, _ = sentences_with_pauses
    _silero_or_skip()
    loaded = load_model(tiny_checkpoint)
    from_file = transcribe.transcribe(loaded, path)
    from_array = transcribe.transcribe(loaded, load_audio(path))
    assert from_file.words and (from_file.text, from_file.words) == (from_array.text, from_array.words)


def test_without_a_vad_a_short_file_is_decoded_exactly_as_evaluate_does(tiny_checkpoint, speech_manifest):
    """`--vad none`: one segment = one utterance, with the same features and CMVN as evaluation."""
    loaded = load_model(tiny_checkpoint)
    decoder = GreedyDecoder(loaded.tokenizer)
    utterances = read_manifest(speech_manifest)
    reference = decode_utterances(loaded, utterances, decoder)
    options = TranscribeOptions(segments=SegmentOptions(vad="none"))
    for utt in utterances:
        hyp = transcribe.transcribe(loaded, utt.audio_path, decoder, options)
        assert (hyp.tokens, hyp.frames) == (reference[utt.id].tokens, reference[utt.id].frames)


def test_without_silero_short_files_work_and_long_ones_say_what_to_install(tiny_checkpoint, speech_dir,
                                                                         sentences_with_pauses, monkeypatch):
    def missing(name):
        raise VadUnavailable(f"the silero VAD needs onnxruntime: {VAD_INSTALL}")

    monkeypatch.setattr(transcribe, "load_vad", missing)
    loaded = load_model(tiny_checkpoint)
    long, _ = sentences_with_pauses
    short = speech_dir / "utt0.wav"
    results = dict(iter_transcripts(loaded, [short, long], GreedyDecoder(loaded.tokenizer)))
    assert isinstance(results[short], Hypothesis)
    assert isinstance(results[long], AudioError)
    assert "pip install silero-vad onnxruntime" in str(results[long]) and str(results[long]).startswith(str(long))


def test_a_file_failing_midway_is_one_error_in_its_place(tiny_checkpoint, sentences_with_pauses, speech_dir,
                                                         monkeypatch):
    """A segment that cannot be read fails its file only; results still come in input order."""
    long, _ = sentences_with_pauses
    short = sorted(speech_dir.glob("*.wav"))
    _silero_or_skip()

    def flaky(path, offset=0.0, duration=None):
        if Path(path) == long and offset > 10:
            raise AudioError(path, "read error")
        return load_audio(path, offset, duration)

    monkeypatch.setattr(transcribe, "load_audio", flaky)
    loaded = load_model(tiny_checkpoint)
    paths = [short[0], long, short[1]]
    options = TranscribeOptions(batch_segments=3, jobs=2)
    results = list(iter_transcripts(loaded, paths, GreedyDecoder(loaded.tokenizer), options))
    assert [path for path, _ in results] == paths
    assert [type(result).__name__ for _, result in results] == ["Hypothesis", "AudioError", "Hypothesis"]
    assert str(results[1][1]).startswith(str(long))


@pytest.mark.parametrize("flags, message", [
    (["--max-segment-seconds", "3600"], "max_segment_seconds must be between"),
    (["--batch-segments", "0"], "batch_segments must be between"),
    (["--vad-threshold", "1.5"], "vad_threshold must be between"),
])
def test_out_of_range_segmenting_options_are_one_error_line(tiny_checkpoint, speech_dir, capsys, flags, message):
    assert main(["transcribe", str(speech_dir / "utt0.wav"), "--model", str(tiny_checkpoint), *flags]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


# ---- batch runs: output as it goes, kill, resume ---------------------------------------


@pytest.fixture
def many_files(speech_dir, tmp_path) -> Path:
    """A folder of 24 short files (links to the espeak sentences) and one corrupt file last."""
    folder = tmp_path / "in"
    folder.mkdir()
    sources = sorted(speech_dir.glob("*.wav"))
    for i in range(24):
        (folder / f"f{i:03d}.wav").symlink_to(sources[i % len(sources)])
    (folder / "zz_corrupt.wav").write_bytes(b"RIFF not really a wav file")
    return folder


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_killed_batch_run_resumes_without_losing_or_repeating_a_file(tiny_checkpoint, many_files, tmp_path):
    out = tmp_path / "out.jsonl"
    args = ["transcribe", str(many_files), "--model", str(tiny_checkpoint), "--format", "jsonl", "--output", str(out),
            "--jobs", "2"]
    command = [sys.executable, "-m", "asr", *args]
    expected = sorted(str(p) for p in many_files.glob("f*.wav"))

    # SIGKILL right after the 5th line is written (tests/signal_after.py).
    killed_run = subprocess.run(signal_after("asr.transcribe:_append_line", 5, "SIGKILL", "self", args),
                                capture_output=True, text=True, timeout=120, start_new_session=True)
    assert killed_run.returncode == -signal.SIGKILL, killed_run.stderr[-2000:]
    killed = _lines(out)  # every line whole (json.loads would fail on a torn one)
    assert [row["file"] for row in killed] == expected[:5]

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


@pytest.mark.parametrize("fmt", ["txt", "jsonl"])
@pytest.mark.parametrize("content", [b"my notes\nthe last line, no newline", b"RIFF\x00\x01binary\n\xff\xfe tail",
                                     b"a\tb\nno tab on this torn line"])
def test_resume_on_a_file_that_is_not_a_transcript_changes_nothing(tiny_checkpoint, speech_dir, tmp_path, capsys,
                                                                    fmt, content):
    out = tmp_path / f"notes.{fmt}"
    out.write_bytes(content)
    args = ["transcribe", str(speech_dir), "--model", str(tiny_checkpoint), "--format", fmt, "--output", str(out),
            "--resume"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(out) in err and len(err.splitlines()) == 1
    assert out.read_bytes() == content


def test_resume_matches_inputs_by_resolved_path(tiny_checkpoint, speech_dir, tmp_path, monkeypatch, capsys):
    sub = tmp_path / "sub"
    sub.mkdir()
    for wav in sorted(speech_dir.glob("*.wav"))[:2]:
        (sub / wav.name).symlink_to(wav)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.txt"
    first = sorted(f"sub/{p.name}" for p in sub.iterdir())
    common = ["--model", str(tiny_checkpoint), "--output", str(out), "--resume"]
    for inputs in (first, [str(tmp_path / f) for f in first], ["./sub"], ["sub", "./sub/../sub", first[0]]):
        assert main(["transcribe", *inputs, *common]) == 0
    assert len(out.read_text().splitlines()) == 2
    assert "2 file(s) already in" in capsys.readouterr().err


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


def test_output_dir_writes_one_valid_file_per_input_and_format(tiny_checkpoint, speech_dir, tmp_path):
    import srt
    import webvtt

    nested = tmp_path / "in" / "day2"
    nested.mkdir(parents=True)
    (nested / "late.wav").symlink_to(speech_dir / "utt5.wav")
    out = tmp_path / "out"
    inputs = [speech_dir / "utt0.wav", speech_dir / "utt1.wav", tmp_path / "in"]
    assert main(["transcribe", *map(str, inputs), "--model", str(tiny_checkpoint), "--format", "all",
                 "--output-dir", str(out)]) == 0
    names = ["utt0", "utt1", "day2/late"]  # a folder's files keep their path below it
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == \
        sorted(f"{n}.{ext}" for n in names for ext in ("txt", "jsonl", "srt", "vtt"))
    for name, source in zip(names, [inputs[0], inputs[1], nested / "late.wav"]):
        row = json.loads((out / f"{name}.jsonl").read_text())
        assert row["file"] == str(source)
        assert (out / f"{name}.txt").read_text() == row["text"] + "\n"
        subtitles = list(srt.parse((out / f"{name}.srt").read_text()))
        captions = webvtt.read(str(out / f"{name}.vtt")).captions
        assert [s.index for s in subtitles] == list(range(1, len(subtitles) + 1))  # numbered per file
        assert " ".join(s.content for s in subtitles) == " ".join(c.text for c in captions) == row["text"]
    # --resume skips the inputs whose files are all there
    (out / "utt1.srt").unlink()
    (out / "utt0.txt").write_text("kept\n")
    assert main(["transcribe", *map(str, inputs), "--model", str(tiny_checkpoint), "--format", "txt,srt",
                 "--output-dir", str(out), "--resume"]) == 0
    assert (out / "utt1.srt").exists() and (out / "utt0.txt").read_text() == "kept\n"


@pytest.mark.parametrize("flags, message", [
    (["--format", "srt"], "srt on stdout takes one input, got 2 files; use --output-dir DIR"),
    (["--format", "txt,vtt"], "2 formats need --output-dir DIR"),
    (["--format", "vtt", "--output", "x.vtt"], "--output appends a line per file"),
    (["--format", "doc"], "unknown --format 'doc'"),
])
def test_output_that_cannot_fit_the_inputs_is_refused_in_one_line(speech_dir, tmp_path, capsys, flags, message):
    args = ["transcribe", str(speech_dir / "utt0.wav"), str(speech_dir / "utt1.wav"),
            "--model", str(tmp_path / "never-loaded.pt"), *flags]
    assert main(args) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], captured.err
    assert captured.out == ""


def test_srt_for_one_input_goes_to_stdout(tiny_checkpoint, speech_dir, capsys):
    import srt

    assert main(["transcribe", str(speech_dir / "utt0.wav"), "--model", str(tiny_checkpoint),
                 "--format", "srt"]) == 0
    list(srt.parse(capsys.readouterr().out))  # parses


def test_an_empty_folder_among_inputs_is_a_warning_line(tiny_checkpoint, speech_dir, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["transcribe", str(empty), str(speech_dir / "utt0.wav"), "--model", str(tiny_checkpoint)]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [f"warning: {empty}: no audio files in this folder"]
    assert captured.out.startswith(str(speech_dir / "utt0.wav"))
    assert main(["transcribe", str(empty), "--model", str(tiny_checkpoint)]) == 1
    assert "error: " in capsys.readouterr().err


ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_readme_first_transcribe_example_runs_as_written_on_the_bundled_samples():
    """README.md's first `asr transcribe` command, on data/samples/ with the bundled model."""
    readme = (ROOT / "README.md").read_text()
    command = next(line.split("#")[0].split() for line in readme.splitlines() if line.startswith("asr transcribe "))
    result = subprocess.run([sys.executable, "-m", "asr", *command[1:]], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    samples = sorted((ROOT / "data" / "samples").glob("*.flac"))
    assert len(samples) >= 3 and all(p.with_suffix(".txt").read_text().strip() for p in samples)
    lines = result.stdout.splitlines()
    assert [ROOT / line.split("\t")[0] for line in lines] == samples
    assert all(line.split("\t")[1].strip() for line in lines)  # the bundled model hears something in each
