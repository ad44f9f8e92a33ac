"""Rendering a synthetic corpus: `asr synth`.

Every utterance is a `SynthJob`, a pure function of (seed, index, prompt sources,
engines, split): text, voice setting (engine, voice, warp; see asr.synth.voices),
speaking rate, pitch, word gap, piper's noise scales, silence padding, gain and
noise floor. So the same command makes the same corpus (espeak-ng, flite and
festival audio is bit-exact; piper samples noise inside its network, so its audio
varies slightly between runs), and a larger --count keeps the first utterances
and adds to them.

Storage: OUT_DIR/<id>.opus, Ogg/Opus at 16 kHz (~28 kbit/s, about 12 MB per
hour), written to a temp name and renamed. The id carries a digest of the job,
so a rerun skips the files already made (resume after a kill) and never reuses
one whose job changed. The manifest (audio paths relative to its folder,
speaker = the voice setting) is rewritten every `MANIFEST_EVERY` finished
utterances, so a long run can be used while it goes.

An utterance that fails (engine error, an engine that hangs past `timeout`) is
reported in one line and left out; the others are still made. After
`HUNG_LIMIT` hangs in a row, a worker stops calling that engine and skips the
rest of its utterances with one line; a rerun tries them again.
"""

from __future__ import annotations

import functools
import os
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from asr.atomic import atomic_path
from asr.audio import SAMPLE_RATE
from asr.data.manifest import Utterance, write_manifest
from asr.synth.job import SynthJob
from asr.synth.prompts import PromptSource, pick_prompt, split_source
from asr.synth.voices import (
    DEFAULT_TIMEOUT,
    ENGINE_WEIGHTS,
    WARPS,
    EngineHung,
    SynthesisError,
    available_engines,
    check_engines,
    speak,
    split_voices,
)

AUDIO_SUFFIX = ".opus"
MANIFEST_EVERY = 500  # finished utterances between manifest rewrites
HUNG_LIMIT = 3  # hangs in a row after which a worker gives up on an engine


def plan_jobs(sources: list[PromptSource], count: int, seed: int = 0, engines: list[str] | None = None,
              split: str = "train") -> list[SynthJob]:
    """`count` jobs; job i depends only on (seed, i, sources, engines, split).
    `engines` default to all installed ones; `split` "dev" uses only the held-out voices and text."""
    engines = available_engines() if engines is None else engines
    check_engines(engines)
    voices = {e: split_voices(e, split) for e in engines}
    engines = [e for e in engines if voices[e]]  # piper has no held-out voice
    if not engines:
        raise SynthesisError(f"none of the engines has a voice for the {split!r} split")
    weights = np.array([ENGINE_WEIGHTS[e] for e in engines])
    sources = [split_source(s, split) for s in sources]
    return [_plan_one(i, sources, seed, engines, weights / weights.sum(), voices, split) for i in range(count)]


def _plan_one(index: int, sources: list[PromptSource], seed: int, engines: list[str], weights: np.ndarray,
              voices: dict[str, list[str]], split: str) -> SynthJob:
    rng = np.random.default_rng([seed, index])
    source, text = pick_prompt(sources, rng, split)
    engine = engines[rng.choice(len(engines), p=weights)]
    voice = voices[engine][rng.integers(len(voices[engine]))]
    # Learners read slowly and deliberately: rates lean slow, and espeak gets word gaps.
    return SynthJob(
        index=index, text=" ".join(text.upper().split()), engine=engine, voice=voice,
        tempo=round(float(rng.uniform(0.65, 1.1)), 3), pitch=round(float(rng.uniform(0.8, 1.25)), 3),
        word_gap=int(rng.integers(0, 9)), pad_start=round(float(rng.uniform(0.1, 0.6)), 3),
        pad_end=round(float(rng.uniform(0.1, 0.6)), 3), gain=round(float(rng.uniform(0.2, 0.9)), 3),
        noise_db=round(float(rng.uniform(-75, -45)), 1), seed=int(rng.integers(2**31)),
        warp=WARPS[rng.integers(len(WARPS))], noise_scale=round(float(rng.uniform(0.35, 0.9)), 3),
        noise_w=round(float(rng.uniform(0.4, 1.2)), 3), source=source,
    )


def synthesize(job: SynthJob, timeout: float = DEFAULT_TIMEOUT) -> np.ndarray:
    """`speak`, then the job's padding, gain and noise floor: float32 `(samples,)`."""
    speech = speak(job, timeout)
    peak = float(np.abs(speech).max())
    if peak == 0:
        raise SynthesisError(f"{job.engine} produced silence for {job.text!r}")
    lead, tail = (np.zeros(int(s * SAMPLE_RATE), np.float32) for s in (job.pad_start, job.pad_end))
    audio = np.concatenate([lead, speech * (job.gain / peak), tail])  # (samples,)
    noise = np.random.default_rng(job.seed).standard_normal(len(audio)) * 10 ** (job.noise_db / 20)
    return np.clip(audio + noise, -1, 1).astype(np.float32)


def make_utterance(job: SynthJob, out_dir: str | os.PathLike, manifest_dir: str | os.PathLike,
                   timeout: float = DEFAULT_TIMEOUT, suffix: str = AUDIO_SUFFIX) -> Utterance:
    """Write OUT_DIR/<job.id><suffix> (.opus: Ogg/Opus, .wav: 16-bit PCM) unless it is already there;
    return its manifest row."""
    path = Path(out_dir) / f"{job.id}{suffix}"
    if not path.is_file():
        audio = synthesize(job, timeout)
        with atomic_path(path) as tmp:
            if suffix == ".wav":
                sf.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
            else:
                sf.write(tmp, audio, SAMPLE_RATE, subtype="OPUS", format="OGG")
    duration = sf.info(str(path)).duration
    return Utterance(job.id, os.path.relpath(path, manifest_dir), round(duration, 4), job.text, job.speaker)


def synthesize_corpus(jobs: list[SynthJob], out_dir: str | os.PathLike, manifest: str | os.PathLike,
                      workers: int = 1, timeout: float = DEFAULT_TIMEOUT,
                      log=sys.stderr) -> tuple[list[Utterance], list[str]]:
    """Make the jobs' files in `out_dir` (skipping those already there) and write `manifest`, with
    `workers` processes (1: this one) of one torch thread each. Returns (utterances made, one line
    per job left out)."""
    out_dir, manifest_dir = Path(out_dir), Path(manifest).resolve().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    work = functools.partial(_make_or_error, out_dir=out_dir, manifest_dir=manifest_dir, timeout=timeout)
    progress = tqdm(total=len(jobs), desc="synthesize", unit="utt", disable=None, file=log)
    utterances, failures, gave_up = [], [], Counter()
    _HANGS.clear()  # the in-process worker starts afresh too
    _one_thread()
    pool = ProcessPoolExecutor(workers, initializer=_one_thread) if workers > 1 else _InProcess()
    with progress, pool:
        for result in pool.map(work, jobs, chunksize=4):
            progress.update()
            if isinstance(result, Utterance):
                utterances.append(result)
                if len(utterances) % MANIFEST_EVERY == 0:
                    write_manifest(utterances, manifest)
                    hours = sum(u.duration for u in utterances) / 3600
                    progress.write(f"{manifest}: {len(utterances)} of {len(jobs)} utterances so far, "
                                   f"{hours:.2f} h", file=log)
            elif isinstance(result, _GaveUp):
                if not gave_up[result.engine]:
                    progress.write(f"warning: {result.engine} hung {HUNG_LIMIT} times in a row; skipping the "
                                   "rest of its utterances (a rerun tries them again)", file=log)
                gave_up[result.engine] += 1
                failures.append(result.line)
            else:
                progress.write(f"warning: skipped {result}", file=log)
                failures.append(result)
    if not utterances:
        raise SynthesisError(f"no utterance could be synthesized ({failures[0] if failures else 'no jobs'})")
    write_manifest(utterances, manifest)
    return utterances, failures


@dataclass(frozen=True)
class _GaveUp:
    engine: str
    line: str


def _one_thread() -> None:
    """Workers are the parallelism: one intra-op thread each (resampling runs in torch)."""
    import torch

    torch.set_num_threads(1)


# Per worker process: hangs in a row for each engine (reset by a success).
_HANGS: Counter = Counter()


def _make_or_error(job: SynthJob, out_dir: Path, manifest_dir: Path, timeout: float) -> Utterance | str | _GaveUp:
    """One job, errors as values: the pool keeps going, and each failure becomes one line."""
    path_exists = (out_dir / f"{job.id}{AUDIO_SUFFIX}").is_file()
    where = f"{job.id} ({job.speaker}, {job.text!r})"
    if _HANGS[job.engine] >= HUNG_LIMIT and not path_exists:
        return _GaveUp(job.engine, f"{where}: not tried, {job.engine} hung {HUNG_LIMIT} times in a row")
    try:
        utterance = make_utterance(job, out_dir, manifest_dir, timeout)
    except EngineHung as err:
        _HANGS[job.engine] += 1
        return f"{where}: {err}"
    except (SynthesisError, OSError, sf.LibsndfileError) as err:
        return f"{where}: {err}"
    _HANGS[job.engine] = 0
    return utterance


class _InProcess:
    """The ProcessPoolExecutor interface for one worker: no pool, same code path."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def map(fn, items, chunksize=1):
        return map(fn, items)
