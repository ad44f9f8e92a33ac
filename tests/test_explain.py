"""`asr explain`: the picture of one file's decoding, on the tiny untrained model (fast, and its
output is as good as any for checking shapes, times and agreement with evaluation).

The picture's size follows the span (asr.explain.figure_size); a long recording is drawn a span
at a time; a span outside the file, a span too long and unreadable audio are one error line.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SENTENCES
from test_cli import _one_error_line

from asr.audio import SAMPLE_RATE, load_audio
from asr.checkpoint import load_model
from asr.cli import main
from asr.data.manifest import read_manifest
from asr.decode import DecodingOptions, GreedyDecoder, make_decoder
from asr.evaluate import decode_utterances
from asr.explain import DPI, MAX_SPAN_SECONDS, describe, explain_audio, explain_file, figure_size


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def expected_pixels(seconds: float) -> tuple[int, int]:
    width, height = figure_size(seconds)
    return round(width * DPI), round(height * DPI)


@pytest.fixture(scope="module")
def long_file(speech_dir, tmp_path_factory) -> Path:
    """All six sentences, with a second of silence after each, repeated until past MAX_SPAN_SECONDS."""
    pieces = []
    for i in range(len(SENTENCES)):
        pieces += [load_audio(speech_dir / f"utt{i}.wav"), np.zeros(SAMPLE_RATE, dtype=np.float32)]
    audio = np.concatenate(pieces)
    audio = np.tile(audio, int(MAX_SPAN_SECONDS * SAMPLE_RATE / len(audio)) + 1)
    path = tmp_path_factory.mktemp("long") / "long.flac"
    sf.write(path, audio, SAMPLE_RATE)
    return path


def test_explain_writes_a_picture_sized_by_the_file(tiny_checkpoint, speech_dir, tmp_path, capsys):
    wav, out = speech_dir / "utt0.wav", tmp_path / "utt0.png"
    assert main(["explain", str(wav), "--model", str(tiny_checkpoint), "--out", str(out)]) == 0
    seconds = sf.info(wav).duration
    assert png_size(out) == expected_pixels(seconds)
    assert f"wrote {out} (0.00-{seconds:.2f} s, greedy)" in capsys.readouterr().out


def test_explain_draws_a_span_of_a_long_recording(tiny_checkpoint, long_file, tmp_path, capsys):
    out = tmp_path / "span.png"
    assert main(["explain", str(long_file), "--model", str(tiny_checkpoint), "--out", str(out),
                 "--start", "30", "--end", "42.5"]) == 0
    assert png_size(out) == expected_pixels(12.5)
    assert "(30.00-42.50 s, greedy)" in capsys.readouterr().out


def test_picture_widths_grow_with_the_span_within_bounds():
    widths = [figure_size(s)[0] for s in (0.5, 5, 10, 20, 60)]
    assert widths == sorted(widths) and widths[0] == 8.0 and widths[-1] == 40.0
    assert figure_size(10)[0] >= 15  # a 10-second utterance: about 1.5 inches a second


@pytest.mark.parametrize("span, message", [
    (["--start", "100"], "--start 100 s is outside the file"),
    (["--start", "-1"], "--start -1 s is outside the file"),
    (["--start", "1", "--end", "0.5"], "--end 0.5 s is not after --start 1 s"),
])
def test_a_span_outside_the_file_is_one_error_line(tiny_checkpoint, speech_dir, tmp_path, capsys, span, message):
    out = tmp_path / "x.png"
    assert main(["explain", str(speech_dir / "utt1.wav"), "--model", str(tiny_checkpoint), "--out", str(out),
                 *span]) == 1
    _one_error_line(capsys.readouterr().err, "utt1.wav", message)
    assert not out.exists()


def test_a_whole_long_recording_asks_for_a_span(tiny_checkpoint, long_file, tmp_path, capsys):
    assert main(["explain", str(long_file), "--model", str(tiny_checkpoint), "--out", str(tmp_path / "x.png")]) == 1
    _one_error_line(capsys.readouterr().err, "long.flac", "too long for one picture", "--start and --end")


def test_unreadable_audio_is_one_error_line(tiny_checkpoint, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEfmt not really audio" * 10)
    assert main(["explain", str(bad), "--model", str(tiny_checkpoint), "--out", str(tmp_path / "x.png")]) == 1
    _one_error_line(capsys.readouterr().err, "bad.wav", "not a readable audio file")


def test_greedy_path_is_what_evaluation_decodes(tiny_checkpoint, speech_manifest):
    """The picture shows the model's real output: the same greedy text and token frames as
    asr.evaluate's batched decoding of the same utterances, and timed words in the file's seconds."""
    loaded = load_model(tiny_checkpoint)
    utterances = read_manifest(speech_manifest)
    decoder = GreedyDecoder(loaded.tokenizer)
    batched = decode_utterances(loaded, utterances, decoder, num_workers=0)
    for utt in utterances:
        e = explain_file(loaded, utt.audio_path, decoder, "greedy", start=0.25)
        whole = explain_audio(loaded, load_audio(utt.audio_path), decoder, "greedy")
        assert whole.greedy.text == batched[utt.id].text and whole.greedy.frames == batched[utt.id].frames
        assert e.final is None and e.start == 0.25
        assert e.log_probs.shape == (len(e.log_probs), len(loaded.tokenizer))
        assert torch.allclose(e.log_probs.exp().sum(-1), torch.ones(len(e.log_probs)), atol=1e-4)
        assert all(0.25 <= w.start < w.end <= 0.25 + e.seconds + e.frame_seconds for w in e.greedy.words)


def test_beam_search_adds_the_final_words(tiny_checkpoint, speech_dir):
    pytest.importorskip("flashlight.lib.text.decoder", reason="beam search needs the beam extra")
    loaded = load_model(tiny_checkpoint)
    options = DecodingOptions(decoder="beam", beam_size=8)
    e = explain_file(loaded, speech_dir / "utt2.wav", make_decoder(options, loaded.tokenizer), describe(options))
    assert e.final is not None and e.decoding == "beam 8"
    assert [w.text for w in e.final.words] == e.final.text.split()
    assert all(0.0 <= w.confidence <= 1.0 for w in e.final.words)
