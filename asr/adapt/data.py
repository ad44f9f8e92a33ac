"""What `asr adapt` learns from: DATA read and checked, its features computed once, batches drawn from memory.

    utterances = read_data("my_voice/")                  # a folder of audio + .txt, or a manifest
    check_data(utterances, tokenizer)                     # AdaptDataError in one line if unusable
    train, held = split_held_out(utterances, 0.1, seed=0)
    cache = featurize(train, features, tokenizer, speeds=(0.9, 1.0, 1.1))   # list[Example]
    for batch in draw_batches(cache, 40.0, rng): ...      # the batch dict of asr.data.dataset

Adaptation data is small (seconds to tens of minutes), so unlike training, every
example's log-mel features are computed once, at each speed perturbation factor,
and kept in memory: 20 minutes at three speeds is about 110 MB of float32
features, and no step waits for audio decoding. SpecAugment is still drawn fresh
at every step (asr.train.compute_loss applies it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asr.audio import AUDIO_EXTENSIONS, SAMPLE_RATE, load_audio, resample
from asr.corpora.importers import import_folder
from asr.data.dataset import collate
from asr.data.manifest import Utterance, read_manifest
from asr.errors import AsrError
from asr.features import FeatureConfig, LogMel
from asr.text import CharTokenizer, normalize_text

MIN_SECONDS = 10.0  # less speech than this teaches nothing measurable (a few prompts are ~30 s)
MIN_UTTERANCES = 3


class AdaptDataError(AsrError):
    """DATA that cannot be adapted on: no audio, missing or empty transcripts, too little speech,
    characters the model cannot spell. The message names the file."""


@dataclass
class Example:
    """One utterance ready for the model, at each speed factor: `features[i]` is (frames, mels)."""

    id: str
    features: list[torch.Tensor]  # one (frames, mels) tensor per speed factor, speed 1.0 first
    tokens: torch.Tensor  # (labels,) int64
    seconds: float  # at speed 1.0


def read_data(data: str | os.PathLike) -> list[Utterance]:
    """DATA as utterances: a folder (audio files with same-named .txt transcripts, as `asr prepare
    folder` reads) or a JSONL manifest. AdaptDataError for no audio or a missing/empty transcript."""
    path = Path(data)
    if path.is_file() and path.suffix == ".jsonl":
        return read_manifest(path)
    if not path.is_dir():
        raise AdaptDataError(f"{path}: not a folder of audio + .txt transcripts, nor a .jsonl manifest")
    audio = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not audio:
        raise AdaptDataError(f"{path}: no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))})")
    missing = [p for p in audio if not p.with_suffix(".txt").is_file()]
    if missing:
        names = ", ".join(p.name for p in missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise AdaptDataError(f"{path}: {len(missing)} of {len(audio)} audio files have no .txt transcript "
                             f"next to them ({names})")
    return import_folder(path)


def check_data(utterances: list[Utterance], tokenizer: CharTokenizer, min_seconds: float = MIN_SECONDS) -> None:
    """AdaptDataError for an empty transcript, letters the model cannot spell after normalization
    (numbers are spelled out, accents folded: see asr.text), or too little speech."""
    alphabet = set(tokenizer.vocab)
    for utt in utterances:
        text = normalize_text(utt.text)
        if not text:
            raise AdaptDataError(f"{utt.audio_path}: empty transcript" if not utt.text.strip() else
                                 f"{utt.audio_path}: transcript {utt.text[:40]!r} has no letters this model spells")
        lost = sorted({c for c in utt.text if c.isalpha() and not normalize_text(c)})
        outside = sorted(set(text) - alphabet)
        if lost or outside:
            raise AdaptDataError(f"{utt.audio_path}: transcript has characters outside the model's alphabet "
                                 f"({''.join(lost + outside)}); it spells {''.join(sorted(alphabet - {' '}))[-30:]}")
    seconds = sum(utt.duration for utt in utterances)
    if seconds < min_seconds or len(utterances) < MIN_UTTERANCES:
        raise AdaptDataError(f"too little speech: {seconds:.1f} s in {len(utterances)} utterance(s); adaptation "
                             f"needs at least {min_seconds:g} s in {MIN_UTTERANCES} or more utterances")


def split_held_out(utterances: list[Utterance], fraction: float, seed: int = 0,
                   max_held: int = 100) -> tuple[list[Utterance], list[Utterance]]:
    """(train, held out): a seeded `fraction` of the utterances (at least 1, at most `max_held`)
    held out for early stopping and decoding-weight tuning; none when fewer than 5 or fraction 0."""
    if fraction <= 0 or len(utterances) < 5:
        return list(utterances), []
    order = np.random.default_rng(seed).permutation(len(utterances))
    n_held = min(max_held, max(1, round(fraction * len(utterances))))
    held = set(order[:n_held].tolist())
    return ([u for i, u in enumerate(utterances) if i not in held],
            [u for i, u in enumerate(utterances) if i in held])


def featurize(utterances: list[Utterance], features: FeatureConfig, tokenizer: CharTokenizer,
              speeds: tuple[float, ...] = (1.0,)) -> list[Example]:
    """Log-mel features of every utterance at every speed factor (as asr.data.dataset perturbs:
    tempo and pitch together), computed once."""
    logmel = LogMel(features)
    speeds = (1.0, *(s for s in speeds if s != 1.0))  # speed 1.0 first: fixed_batches uses it
    examples = []
    with torch.no_grad():
        for utt in utterances:
            audio = load_audio(utt.audio_path, utt.offset, utt.duration)  # (samples,)
            feats = [logmel(torch.from_numpy(audio if speed == 1.0 else resample(audio, round(SAMPLE_RATE * speed))))
                     for speed in speeds]  # each (frames, mels)
            tokens = torch.tensor(tokenizer.encode(utt.text), dtype=torch.long)  # (labels,)
            examples.append(Example(utt.id, feats, tokens, utt.duration))
    return examples


def sample_replay(utterances: list[Utterance], seconds: float, seed: int = 0) -> list[Utterance]:
    """A seeded random sample of `utterances` of about `seconds` of audio in all."""
    chosen, total = [], 0.0
    for i in np.random.default_rng(seed).permutation(len(utterances)):
        if total >= seconds:
            break
        chosen.append(utterances[i])
        total += utterances[i].duration
    return chosen


def draw_batches(examples: list[Example], max_batch_seconds: float, rng: np.random.Generator) -> list[dict]:
    """One pass over `examples` in a random order, each at a random speed factor, packed into
    batches of at most `max_batch_seconds` of padded audio. Returns batch dicts (asr.data.dataset)."""
    shuffled = [examples[i] for i in rng.permutation(len(examples))]
    return [collate([(e.id, e.features[rng.integers(len(e.features))], e.tokens) for e in batch])
            for batch in _pack(shuffled, max_batch_seconds)]


def fixed_batches(examples: list[Example], max_batch_seconds: float) -> list[dict]:
    """`examples` at speed 1.0, in their order, packed as `draw_batches` packs: for measuring a loss."""
    return [collate([(e.id, e.features[0], e.tokens) for e in batch]) for batch in _pack(examples, max_batch_seconds)]


def _pack(examples: list[Example], max_batch_seconds: float) -> list[list[Example]]:
    """Consecutive groups whose padded length (longest x count) stays within `max_batch_seconds`."""
    groups, current, longest = [], [], 0.0
    for example in examples:
        if current and max(longest, example.seconds) * (len(current) + 1) > max_batch_seconds:
            groups.append(current)
            current, longest = [], 0.0
        current.append(example)
        longest = max(longest, example.seconds)
    return groups + [current] if current else groups
