"""One synthetic utterance to make: `SynthJob`, and the name of its voice setting.

A job is planned by asr.synth.corpus (`plan_jobs`), spoken by asr.synth.voices (`speak`)
and named in the manifest by `voice_setting`. It lives apart from both so that imports run
one way: corpus -> voices -> job.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


def voice_setting(engine: str, voice: str, warp: float) -> str:
    """The name of a voice setting, as in the manifest's speaker field: "espeak-en-us+f3-w0.94"."""
    return f"{engine}-{voice}-w{warp:.2f}"


@dataclass(frozen=True)
class SynthJob:
    """One utterance to make. `tempo` > 1 is faster speech; `pitch` scales the voice's F0 (on top of
    the warp, which scales formants and F0 together)."""

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
    warp: float = 1.0  # vocal-tract-length factor, one of asr.synth.voices.WARPS
    noise_scale: float = 0.667  # piper: variability of the voice
    noise_w: float = 0.8  # piper: variability of phoneme durations
    source: str = ""  # the prompt source the text came from

    @property
    def id(self) -> str:
        digest = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        return f"synth{self.index:06d}-{digest}"

    @property
    def speaker(self) -> str:
        return voice_setting(self.engine, self.voice, self.warp)
