"""asr.audio: every unusable file raises AudioError naming it; every usable one comes out 16 kHz mono."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import soundfile as sf
from conftest import tone
from torch._utils import ExceptionWrapper

from asr.audio import SAMPLE_RATE, AudioError, audio_info, load_audio


def _write_tone(path, seconds=1.0, rate=SAMPLE_RATE, channels=1, **kwargs):
    sf.write(path, tone(seconds, rate, channels), rate, **kwargs)
    return path


def _dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[spectrum.argmax()])


def _missing(tmp_path):
    return tmp_path / "missing.wav"


def _empty(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    return path


def _text_as_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are meeting notes, not audio\n" * 20)
    return path


def _truncated_wav(tmp_path):
    """A valid 44-byte header that promises 1 s of audio, followed by a tenth of it."""
    good = _write_tone(tmp_path / "good.wav")
    path = tmp_path / "truncated.wav"
    path.write_bytes(good.read_bytes()[: 44 + 3200])
    return path


def _header_only_wav(tmp_path):
    good = _write_tone(tmp_path / "good.wav")
    path = tmp_path / "header_only.wav"
    path.write_bytes(good.read_bytes()[:44])
    return path


def _truncated_flac(tmp_path):
    good = _write_tone(tmp_path / "good.flac")
    data = good.read_bytes()
    path = tmp_path / "truncated.flac"
    path.write_bytes(data[: len(data) // 2])
    return path


def _garbage_body_ogg(tmp_path):
    """Real Ogg/Vorbis headers, then random bytes where the audio pages should be."""
    good = _write_tone(tmp_path / "good.ogg")
    data = good.read_bytes()
    path = tmp_path / "garbage.ogg"
    path.write_bytes(data[:400] + np.random.default_rng(0).bytes(len(data) - 400))
    return path


def _zero_frames(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    return path


def _directory(tmp_path):
    path = tmp_path / "folder.wav"
    path.mkdir()
    return path


BAD_FILES = {
    "missing": (_missing, "not found"),
    "empty": (_empty, "empty"),
    "text renamed .wav": (_text_as_wav, "not a readable audio file"),
    "truncated wav": (_truncated_wav, "truncated"),
    "header-only wav": (_header_only_wav, "truncated"),
    "truncated flac": (_truncated_flac, "not a readable audio file"),
    "garbage-body ogg": (_garbage_body_ogg, "not a readable audio file"),
    "zero frames": (_zero_frames, "no audio samples"),
    "directory": (_directory, "directory"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_load_audio_rejects_unusable_file_naming_it(tmp_path, case):
    make, reason = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert reason in message
    assert "\n" not in message
    assert info.value.path == str(path)


# A truncated FLAC or Ogg still has an intact header, so only decoding notices it.
HEADER_DETECTABLE = [c for c in BAD_FILES if c not in ("truncated flac", "garbage-body ogg")]


@pytest.mark.parametrize("case", HEADER_DETECTABLE)
def test_audio_info_rejects_unusable_file_naming_it(tmp_path, case):
    make, reason = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(AudioError, match=reason) as info:
        audio_info(path)
    assert str(info.value).startswith(str(path))


def test_audio_error_survives_pickling():
    for path in ["/data/c.wav", "/data/odd: name.wav"]:
        error = pickle.loads(pickle.dumps(AudioError(path, "contains no audio samples")))
        assert (error.path, error.reason, str(error)) == (path, "contains no audio samples",
                                                          f"{path}: contains no audio samples")


def test_audio_error_from_a_dataloader_worker_stays_an_audio_error(tmp_path):
    """A worker's exception is re-raised in the main process by rebuilding it from the
    worker's traceback text (torch's ExceptionWrapper). It must still be an AudioError with
    a one-line message naming the file, which the CLI prints as `error: ...`.
    (tests/test_cli.py runs the same through a real worker.)"""
    bad = _text_as_wav(tmp_path)
    try:
        load_audio(bad)
    except AudioError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(AudioError) as info:
        wrapped.reraise()
    assert str(info.value) == (f"{bad}: not a readable audio file (unknown or corrupt format; "
                               "expected one of wav, flac, ogg, opus, mp3)")
    assert info.value.path == str(bad)


def test_streaming_wav_with_unknown_length_still_loads(tmp_path):
    """Recorders writing to a pipe leave 0xFFFFFFFF as the data size; that is not truncation."""
    path = _write_tone(tmp_path / "stream.wav")
    data = bytearray(path.read_bytes())
    data[4:8] = data[40:44] = (0xFFFFFFFF).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    assert load_audio(path).shape == (SAMPLE_RATE,)


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_any_sample_rate_comes_out_at_16k_with_the_right_length(tmp_path, rate):
    path = _write_tone(tmp_path / "tone.wav", seconds=1.5, rate=rate)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 1.5 * SAMPLE_RATE) <= 1
    assert _dominant_hz(audio) == pytest.approx(440, abs=1)  # pitch kept: really resampled
    assert audio_info(path) == (pytest.approx(1.5, abs=1 / rate), rate, 1)


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_is_downmixed_by_averaging(tmp_path, channels):
    rate = 44100
    t = np.arange(rate) / rate
    # Each channel carries its own offset; the mean of offsets 0.0, 0.1, ... is known.
    offsets = 0.1 * np.arange(channels)
    data = (0.2 * np.sin(2 * np.pi * 440 * t)[:, None] + offsets[None, :]).astype(np.float32)
    path = tmp_path / "multi.wav"
    sf.write(path, data, rate, subtype="FLOAT")
    audio = load_audio(path)
    assert audio.shape == (SAMPLE_RATE,)
    assert audio[1000:-1000].mean() == pytest.approx(offsets.mean(), abs=1e-3)
    assert audio_info(path)[2] == channels


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("a.wav", {}),
        ("a.flac", {}),
        ("vorbis.ogg", {"format": "OGG", "subtype": "VORBIS"}),
        ("opus.ogg", {"format": "OGG", "subtype": "OPUS"}),
    ],
)
def test_common_formats_load(tmp_path, name, kwargs):
    path = _write_tone(tmp_path / name, seconds=1.0, rate=48000, channels=2, **kwargs)
    audio = load_audio(path)
    assert abs(len(audio) - SAMPLE_RATE) <= 1
    assert _dominant_hz(audio) == pytest.approx(440, abs=1)
    assert np.sqrt(np.mean(audio**2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.1)  # lossy codecs wobble


def test_offset_and_duration_return_that_span(tmp_path):
    ramp = np.linspace(-0.9, 0.9, 2 * SAMPLE_RATE, dtype=np.float32)  # sample value encodes its position
    path = tmp_path / "ramp.wav"
    sf.write(path, ramp, SAMPLE_RATE, subtype="FLOAT")
    span = load_audio(path, offset=0.5, duration=0.25)
    np.testing.assert_array_equal(span, ramp[8000:12000])
    np.testing.assert_array_equal(load_audio(path, offset=1.5), ramp[24000:])
    np.testing.assert_array_equal(load_audio(path, duration=0.1), ramp[:1600])


def test_offset_and_duration_are_in_seconds_at_other_rates(tmp_path):
    rate = 44100
    ramp = np.linspace(-0.9, 0.9, 2 * rate, dtype=np.float32)
    path = tmp_path / "ramp44.wav"
    sf.write(path, ramp, rate, subtype="FLOAT")
    span = load_audio(path, offset=0.5, duration=0.25)
    assert abs(len(span) - 4000) <= 1
    # The ramp is smooth, so resampling keeps its values: the middle of the span sits at 0.625 s.
    expected_middle = ramp[int(0.625 * rate)]
    assert span[len(span) // 2] == pytest.approx(expected_middle, abs=1e-3)


def test_offset_past_the_end_is_an_error(tmp_path):
    path = _write_tone(tmp_path / "short.wav", seconds=1.0)
    with pytest.raises(AudioError, match="no audio samples at offset"):
        load_audio(path, offset=2.0)


def test_unusable_paths_are_named_for_what_they_are(tmp_path):
    """Not libsndfile's words ("possibly a pipe?", "System error.") or "file not found" for a link loop."""
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    broken = tmp_path / "broken.wav"
    broken.symlink_to(tmp_path / "gone.wav")
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    cases = {loop: "symbolic link loop", broken: "broken symbolic link", noise: "unknown or corrupt format"}
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.wav"
        locked.write_bytes(b"RIFF")
        locked.chmod(0)
        cases[locked] = "permission denied"
    for path, words in cases.items():
        with pytest.raises(AudioError, match=words):
            load_audio(path)
