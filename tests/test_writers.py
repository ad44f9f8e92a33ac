"""SRT / WebVTT / JSON-lines output, checked with real parsers (`srt`, `webvtt-py`)."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
import soundfile as sf
import srt
import torch
import webvtt
from conftest import save_checkpoint, tiny_model

from asr.checkpoint import load_model
from asr.cli import main
from asr.decode import DecodingOptions, Hypothesis, Word, make_decoder
from asr.text import CharTokenizer
from asr.transcribe import transcribe_many
from asr.writers import split_cues, timestamp, to_jsonl, to_srt, to_vtt


def words(count: int, seconds_each: float = 0.5, gap: float = 0.1) -> list[Word]:
    return [Word(f"w{i}", i * (seconds_each + gap), i * (seconds_each + gap) + seconds_each, 0.9)
            for i in range(count)]


def test_cues_respect_max_words_and_duration():
    cues = split_cues(words(30), max_seconds=100, max_words=12)
    assert [len(c) for c in cues] == [12, 12, 6]
    cues = split_cues(words(30), max_seconds=2.0, max_words=100)
    assert all(c[-1].end - c[0].start <= 2.0 for c in cues)
    assert [w for c in cues for w in c] == words(30)
    assert split_cues([Word("long", 0.0, 9.0, 1.0), Word("next", 9.0, 9.5, 1.0)], max_seconds=5) == \
        [[Word("long", 0.0, 9.0, 1.0)], [Word("next", 9.0, 9.5, 1.0)]]


def test_timestamps_carry_hours_and_round_to_milliseconds():
    assert timestamp(3725.0416, ",") == "01:02:05,042"
    assert timestamp(0.0, ".") == "00:00:00.000"


def test_srt_and_vtt_parse_back_to_the_same_cues():
    cues = split_cues(words(20), max_seconds=3.0)
    parsed = list(srt.parse(to_srt(cues)))
    assert [p.content for p in parsed] == [" ".join(w.text for w in c) for c in cues]
    assert [p.start for p in parsed] == [timedelta(milliseconds=round(c[0].start * 1000)) for c in cues]
    assert [p.end for p in parsed] == [timedelta(milliseconds=round(c[-1].end * 1000)) for c in cues]
    captions = webvtt.from_buffer(io.StringIO(to_vtt(cues))).captions
    assert [c.text for c in captions] == [p.content for p in parsed]
    assert [c.start_in_seconds + c.start_time.milliseconds / 1000 for c in captions] == \
        pytest.approx([p.start.total_seconds() for p in parsed], abs=1e-3)


def test_jsonl_carries_timed_words_with_confidence():
    hyp = Hypothesis("w0 w1", words=words(2))
    row = json.loads(to_jsonl("a.wav", hyp))
    assert row == {"file": "a.wav", "text": "w0 w1", "words": [
        {"word": "w0", "start": 0.0, "end": 0.5, "confidence": 0.9},
        {"word": "w1", "start": 0.6, "end": 1.1, "confidence": 0.9}]}


@pytest.fixture(scope="module")
def chatty_checkpoint(tmp_path_factory):
    """A tiny untrained model with a sharpened output layer, so it emits many 'words'."""
    model = tiny_model()
    with torch.no_grad():
        model.output.weight.mul_(40)
        model.output.bias[CharTokenizer().space_id] += 5.0
    return save_checkpoint(model, tmp_path_factory.mktemp("model") / "chatty.pt")


@pytest.mark.parametrize("decoder", ["greedy", "beam"])
def test_transcribe_subtitles_parse_and_stay_inside_the_audio(chatty_checkpoint, speech_dir, tmp_path, decoder):
    wav = speech_dir / "utt0.wav"
    duration = sf.info(wav).duration
    out = tmp_path / "out.jsonl"
    assert main(["transcribe", str(wav), "--model", str(chatty_checkpoint), "--decoder", decoder,
                 "--beam-size", "4", "--format", "jsonl", "--output", str(out)]) == 0
    row = json.loads(out.read_text())
    assert len(row["words"]) >= 3 and [w["word"] for w in row["words"]] == row["text"].split()
    times = [t for w in row["words"] for t in (w["start"], w["end"])]
    assert times == sorted(times) and 0 <= times[0] and times[-1] <= duration + 1e-6
    assert all(w["start"] < w["end"] and 0 < w["confidence"] <= 1 for w in row["words"])

    loaded = load_model(chatty_checkpoint)
    documents = {}
    for fmt in ("srt", "vtt"):
        buffer = io.StringIO()
        decoding = make_decoder(DecodingOptions(decoder=decoder, beam_size=4), loaded.tokenizer)
        assert transcribe_many(loaded, [wav], decoding, (fmt,), out=buffer) == 0
        documents[fmt] = buffer.getvalue()
    parsed = list(srt.parse(documents["srt"]))
    assert " ".join(p.content for p in parsed) == row["text"]
    assert parsed[0].start.total_seconds() == pytest.approx(row["words"][0]["start"], abs=1e-3)
    assert all(a.end <= b.start for a, b in zip(parsed, parsed[1:]))
    captions = webvtt.from_buffer(io.StringIO(documents["vtt"])).captions
    assert [c.text for c in captions] == [p.content for p in parsed]
