"""Shared fixtures: speech synthesized with espeak-ng, tiny manifests and tiny models.

Nothing is downloaded. Audio is generated into pytest's tmp folders; the
espeak-ng outputs are cached per session because synthesis costs ~50 ms a call.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.audio import SAMPLE_RATE
from asr.data.manifest import Utterance, write_manifest

SENTENCES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "we call it bear",
    "she sells sea shells",
    "zero three five one",
    "open the red door",
]


def synthesize(text: str, path: Path, voice: str = "en-us", speed: int = 160, rate: int = SAMPLE_RATE) -> Path:
    """Speak `text` with espeak-ng into a mono 16-bit wav at `rate` Hz."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make install puts it there)")
    raw = path.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    audio, native = sf.read(raw, dtype="float32")
    raw.unlink()
    if native != rate:
        from asr.audio import resample  # native -> 16 kHz, then to the requested rate by ratio

        audio = resample(audio, native)
        if rate != SAMPLE_RATE:
            import torch
            import torchaudio.functional as AF

            audio = AF.resample(torch.from_numpy(audio), SAMPLE_RATE, rate).numpy()
    sf.write(path, audio, rate)
    return path


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory) -> Path:
    """A folder with one 16 kHz wav + .txt per sentence in SENTENCES."""
    root = tmp_path_factory.mktemp("speech")
    for i, text in enumerate(SENTENCES):
        synthesize(text, root / f"utt{i}.wav")
        (root / f"utt{i}.txt").write_text(text)
    return root


@pytest.fixture(scope="session")
def speech_manifest(speech_dir, tmp_path_factory) -> Path:
    """JSONL manifest of `speech_dir`."""
    utts = []
    for i, text in enumerate(SENTENCES):
        path = speech_dir / f"utt{i}.wav"
        utts.append(Utterance(f"utt{i}", str(path), sf.info(path).duration, text, "espeak"))
    out = tmp_path_factory.mktemp("manifests") / "speech.jsonl"
    write_manifest(utts, out)
    return out


def tone(seconds: float, rate: int = SAMPLE_RATE, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    """A sine tone `(samples,)` or `(samples, channels)` for audio-format tests."""
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)
