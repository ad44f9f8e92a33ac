"""Shared fixtures: speech synthesized with espeak-ng, tiny manifests and tiny models.

Nothing is downloaded. Audio is generated into pytest's tmp folders; the
espeak-ng outputs are cached per session because synthesis costs ~50 ms a call.

Tiny models: `tiny_model()` builds an untrained one (seeded), `save_checkpoint()` writes
it as a checkpoint, and the `tiny_checkpoint` fixture is one such file for the session
(read-only: a test that changes its checkpoint copies it first).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.audio import SAMPLE_RATE
from asr.data.manifest import Utterance, write_manifest

# A runner may start the tests with SIGINT ignored (a shell's `command &`, nohup), and the processes
# the Ctrl-C tests start would inherit that and never see their Ctrl-C: give them the default back.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Test models are tiny: one intra-op thread is as fast as two, and on a busy 2-core
# machine two threads thrash (10 steps of the overfit run below: 35 s with two, 7 s with one).
# Subprocesses get the same through ONE_THREAD_ENV.
torch.set_num_threads(1)
ONE_THREAD_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}



def signal_after(target: str, calls: int, signal_name: str, whom: str, args: list[str]) -> list[str]:
    """The command line of `asr ARGS` that sends `signal_name` to itself (whom="self") or to its
    process group ("group") right after the `calls`-th return of `target` ("module:function");
    see tests/signal_after.py. Run it with start_new_session=True."""
    hook = Path(__file__).parent / "signal_after.py"
    return [sys.executable, str(hook), target, str(calls), signal_name, whom, *args]


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
        from asr.audio import (
            resample,  # native -> 16 kHz, then to the requested rate by ratio
        )

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


def num_frames(config, samples: int) -> int:
    """Frames of a centered STFT (asr.features.LogMel) of `samples` samples: one per hop, plus one."""
    return samples // config.hop_length + 1


def tone(seconds: float, rate: int = SAMPLE_RATE, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    """A sine tone `(samples,)` or `(samples, channels)` for audio-format tests."""
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


@pytest.fixture(scope="session")
def overfit_exp(speech_manifest, tmp_path_factory) -> Path:
    """Experiment folder (last.pt, config.yaml, metrics.jsonl) of a tiny BiLSTM-CTC trained
    through asr.train.run until it overfits `speech_manifest`; ~25 s on 2 busy CPU cores.
    Greedy decoding then gets those six sentences (nearly) right: tests/test_train.py checks."""
    from asr.features import SpecAugmentConfig
    from asr.model import ModelConfig
    from asr.train import RunConfig, TrainConfig, run

    config = RunConfig(
        train_manifest=str(speech_manifest),
        specaug=SpecAugmentConfig(freq_masks=0, time_masks=0),
        model=ModelConfig(hidden_size=128, num_layers=1, subsample=3, dropout=0.0),
        # All six utterances (~10 s) fit one batch, so an epoch is one step: 200 steps.
        train=TrainConfig(epochs=200, max_batch_seconds=100.0, lr=3e-3, warmup_steps=10, final_lr_ratio=0.1,
                          weight_decay=0.0, sortagrad=False, log_every=5, checkpoint_every=1000,
                          num_workers=0, device="cpu"),
    )
    exp_dir = tmp_path_factory.mktemp("overfit")
    run(config, exp_dir)
    return exp_dir


def tiny_model(seed: int = 0, **sizes):
    """An untrained CTCModel in eval mode: 1 x 16 BiLSTM over 3 stacked frames, the default
    vocabulary, unless `sizes` (ModelConfig fields) say otherwise. Same seed, same weights."""
    from asr.model import CTCModel, ModelConfig
    from asr.text import CharTokenizer

    torch.manual_seed(seed)
    config = {"hidden_size": 16, "num_layers": 1, "subsample": 3, "vocab_size": len(CharTokenizer()), **sizes}
    return CTCModel(ModelConfig(**config)).eval()


def save_checkpoint(model, path: Path, decoding: dict | None = None, train_state: dict | None = None) -> Path:
    """Write `model` as a checkpoint at `path`, with the default features and vocabulary."""
    from asr.checkpoint import make_checkpoint, save_atomic
    from asr.features import FeatureConfig
    from asr.text import CharTokenizer

    save_atomic(make_checkpoint(model, FeatureConfig(), CharTokenizer(), decoding=decoding,
                                train_state=train_state), path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """`tiny_model()` as a checkpoint with nothing stored for decoding (greedy): fast to load and run."""
    return save_checkpoint(tiny_model(), tmp_path_factory.mktemp("model") / "tiny.pt")
