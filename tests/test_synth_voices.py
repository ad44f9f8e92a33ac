"""asr.synth.voices: the voice space, each engine speaking, the warp, missing and hanging engines."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE
from asr.synth.job import SynthJob
from asr.synth.voices import (
    ENGINE_WEIGHTS,
    HELDOUT_VOICES,
    VOICES,
    WARPS,
    EngineHung,
    SynthesisError,
    available_engines,
    check_engines,
    speak,
    voice_settings,
)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def _job(engine: str, voice: str, warp: float = 1.0, text: str = "OPEN THE WINDOW AND LOOK AT THE SEA",
         **changes) -> SynthJob:
    fields = dict(index=0, text=text, engine=engine, voice=voice, tempo=1.0, pitch=1.0, word_gap=0, pad_start=0.1,
                  pad_end=0.1, gain=0.5, noise_db=-70.0, seed=0, warp=warp)
    return SynthJob(**{**fields, **changes})


def test_voice_space_has_500_settings_and_a_disjoint_heldout_part():
    engines = list(ENGINE_WEIGHTS)
    train, dev = voice_settings(engines, "train"), voice_settings(engines, "dev")
    assert len(set(train)) == len(train) >= 500
    assert not set(train) & set(dev) and len(dev) >= 100
    assert len(train) + len(dev) == sum(len(v) for v in VOICES.values()) * len(WARPS)
    assert all(voice in VOICES[engine] for engine, voice in HELDOUT_VOICES)
    assert all(any(s.startswith(f"{e}-") for s in train) for e in engines)  # every engine trains


def test_unknown_missing_and_no_engines_are_clear_errors(monkeypatch, tmp_path):
    with pytest.raises(SynthesisError, match="unknown engine.*mbrola"):
        check_engines(["mbrola"])
    with pytest.raises(SynthesisError, match="no text-to-speech engine"):
        check_engines([])
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing installed
    assert not {"espeak", "flite", "festival"} & set(available_engines())
    with pytest.raises(SynthesisError, match="not installed: festival"):
        check_engines(["festival"])


@pytest.mark.parametrize("engine", list(ENGINE_WEIGHTS))
def test_each_installed_engine_speaks_every_kind_of_voice(engine):
    if engine not in available_engines():
        pytest.skip(f"{engine} is not installed")
    for voice in VOICES[engine][:: max(1, len(VOICES[engine]) // 3)]:
        audio = speak(_job(engine, voice))
        assert audio.dtype == np.float32 and 1.0 < len(audio) / SAMPLE_RATE < 6, voice
        assert np.abs(audio).max() > 0.01, voice


def _centroid(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
    return float((spectrum * freqs).sum() / spectrum.sum())


def _f0(audio: np.ndarray) -> float:
    import librosa

    return float(np.median(librosa.yin(audio, fmin=50, fmax=500, sr=SAMPLE_RATE)))


@needs_espeak
def test_warp_scales_formants_and_f0_and_keeps_the_tempo():
    low, high = (speak(_job("espeak", "en-us", warp)) for warp in (WARPS[0], WARPS[-1]))
    assert 1.15 < _centroid(high) / _centroid(low) < 1.6  # the spectrum scaled by about 1.15 / 0.85 = 1.35
    assert 1.15 < _f0(high) / _f0(low) < 1.6
    assert len(high) / len(low) == pytest.approx(1.0, abs=0.1)  # the engine's rate compensates


@needs_espeak
def test_pitch_moves_f0_but_not_the_spectrum():
    low, high = (speak(_job("espeak", "en-us", pitch=p)) for p in (0.8, 1.25))
    assert _f0(high) / _f0(low) > 1.15
    assert _centroid(high) / _centroid(low) == pytest.approx(1.0, abs=0.05)


def test_a_hanging_engine_is_killed_after_the_timeout(monkeypatch, tmp_path):
    fake = tmp_path / "espeak-ng"
    fake.write_text("#!/bin/sh\nsleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    start = time.monotonic()
    with pytest.raises(EngineHung, match="espeak-ng hung: no result after 0.5 s"):
        speak(_job("espeak", "en-us"), timeout=0.5)
    assert time.monotonic() - start < 5
