"""Long recordings joined from short utterances: the inputs of benchmarks.transcribe and benchmarks.long_audio.

    leading_utterances(utterances, minutes)          the first whole utterances that reach `minutes`
    join_utterances(utterances, path)                their audio back to back into one 16 kHz 16-bit wav
    join_utterances(utterances, path, pauses=(0.2, 2.0), seed=0)
                                                     with a room-tone pause after each utterance

transcribe.py joins the first dev utterances back to back (no pauses); long_audio.py joins a
seeded sample with pauses. A pause is not digital silence: it is Gaussian noise at the level
of the quietest 100 ms of the utterance before it (its room tone), so a VAD cannot find the
joins by looking for zeros. Its length is uniform in `pauses` seconds; both draws come from
numpy's default_rng(seed) in the order (length, noise) per utterance, so a seed gives the
same recording bit for bit. The wav is written through a temporary file and streamed: the
whole recording is never in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from asr.audio import SAMPLE_RATE, load_audio
from asr.data.manifest import Utterance

ROOM_TONE_FRAME = 1600  # samples: 100 ms frames, the quietest of which sets a pause's noise level


def leading_utterances(utterances: list[Utterance], minutes: float) -> list[Utterance]:
    """The first whole utterances whose durations add up to at least `minutes`."""
    used, seconds = [], 0.0
    for utt in utterances:
        if seconds >= minutes * 60:
            break
        used.append(utt)
        seconds += utt.duration
    if seconds < minutes * 60:
        raise SystemExit(f"error: the manifest holds only {seconds / 60:.1f} min of audio, {minutes:g} min asked")
    return used


def join_utterances(utterances: list[Utterance], path: Path, pauses: tuple[float, float] | None = None,
                    seed: int = 0) -> str:
    """Write the utterances' audio one after another into `path` (16 kHz mono 16-bit wav), each followed by
    a room-tone pause of uniform(*pauses) seconds if `pauses` is given. Returns the joined reference text."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.wav")
    with sf.SoundFile(tmp, "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16") as out:
        for utt in utterances:
            audio = load_audio(utt.audio_path, utt.offset, utt.duration)  # (samples,) float32
            out.write(audio)
            if pauses:
                out.write(room_tone(audio, rng.uniform(*pauses), rng))
    tmp.replace(path)
    return " ".join(u.text for u in utterances)


def room_tone(audio: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """`seconds` of Gaussian noise at the RMS of the quietest 100 ms frame of audio `(samples,)`: `(samples,)`."""
    frames = audio[: len(audio) // ROOM_TONE_FRAME * ROOM_TONE_FRAME].reshape(-1, ROOM_TONE_FRAME)
    level = np.sqrt((frames ** 2).mean(axis=1)).min()
    return (rng.standard_normal(round(seconds * SAMPLE_RATE)) * level).astype(np.float32)
