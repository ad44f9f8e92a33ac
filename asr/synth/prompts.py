"""What the synthetic speakers read: prompt sources mixed by weight.

A `PromptSource` is a named pool of normalized sentences (from a manifest's
transcripts or from text files) or the small built-in grammar (`GRAMMAR`), which
makes digit sequences, spelled numbers and everyday sentences. `pick_prompt`
chooses a source by weight and then a sentence from it with the caller's RNG,
so a job's text is a pure function of (seed, index, sources).

Every sentence belongs to one split by a hash of its text: about 1 in 50
(`is_dev_sentence`) is reserved for the synthetic dev set and never read for
training, so that dev set is unseen text as well as unseen voices.

Text files go through `asr.textcorpus` (the project's sentence reader: sentence
split, normalized, 3-25 words, deduplicated, dev/test text excluded); manifests
give their transcripts, normalized and deduplicated.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.errors import AsrError
from asr.text import DIGIT_WORDS, normalize_text

GRAMMAR = "grammar"
MIN_WORDS, MAX_WORDS = 3, 25  # prompt length from text files
DEV_SHARE = 50  # 1 in DEV_SHARE sentences (by hash) is reserved for the synthetic dev set

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


class PromptError(AsrError):
    """A prompt source that cannot be used. The message names the file."""


@dataclass(frozen=True)
class PromptSource:
    """`sentences` (normalized, lower case) to draw from, or the grammar when empty and named GRAMMAR."""

    name: str
    weight: float
    sentences: tuple[str, ...] = ()


def grammar_sentence(rng: np.random.Generator) -> str:
    """A digit sequence, a spelled number phrase, or a grammar sentence (lower case)."""
    pick = lambda words: words[rng.integers(len(words))]  # noqa: E731
    kind = rng.random()
    if kind < 0.3:
        return " ".join(pick(DIGIT_WORDS) for _ in range(rng.integers(3, 7)))
    if kind < 0.4:
        return f"{pick(SUBJECTS)} {pick(VERBS)} {normalize_text(str(rng.integers(2, 100)))} {pick(PLURALS)}"
    if kind < 0.55:
        return pick(QUESTIONS).format(s=pick(SUBJECTS), v=pick(VERBS), o=pick(OBJECTS), p=pick(PLACES),
                                      n=pick(PLURALS))
    sentence = f"{pick(SUBJECTS)} {pick(VERBS)} {pick(OBJECTS)}"
    return f"{sentence} {pick(PLACES)}" if rng.random() < 0.7 else sentence


def is_dev_sentence(sentence: str) -> bool:
    """Whether `sentence` (normalized) is reserved for the synthetic dev set: a stable hash, not Python's."""
    return int(hashlib.sha1(sentence.encode()).hexdigest()[:8], 16) % DEV_SHARE == 0


def split_source(source: PromptSource, split: str) -> PromptSource:
    """The part of `source` that `split` ("train" or "dev") may read."""
    if not source.sentences:
        return source
    kept = tuple(s for s in source.sentences if is_dev_sentence(s) == (split == "dev"))
    if not kept:
        raise PromptError(f"{source.name}: no sentence of it falls in the {split!r} split")
    return PromptSource(source.name, source.weight, kept)


def pick_prompt(sources: list[PromptSource], rng: np.random.Generator, split: str = "train") -> tuple[str, str]:
    """(source name, sentence) drawn by weight. Grammar sentences are redrawn until they fall in `split`;
    the other sources must already be split (`split_source`)."""
    weights = np.array([s.weight for s in sources], dtype=np.float64)
    source = sources[rng.choice(len(sources), p=weights / weights.sum())]
    if source.sentences:
        return source.name, source.sentences[rng.integers(len(source.sentences))]
    while True:
        sentence = grammar_sentence(rng)
        if is_dev_sentence(sentence) == (split == "dev"):
            return source.name, sentence


def read_source(path: str | os.PathLike, weight: float, exclude: list[str] = (), pool: int = 0,
                seed: int = 0) -> PromptSource:
    """The sentences of a manifest (its transcripts, any length) or of text files (3-25 words), through
    the project's sentence reader (normalized, deduplicated, `exclude` text left out). `pool` > 0 keeps
    a seeded uniform sample of that many (one pass, bounded memory), in corpus order."""
    from asr.textcorpus import TextCorpusError, iter_sentences, sample_sentences

    is_manifest = Path(path).suffix == ".jsonl"
    filters = dict(min_words=1 if is_manifest else MIN_WORDS, max_words=None if is_manifest else MAX_WORDS,
                   exclude=exclude)
    try:
        if pool:
            sentences = sample_sentences([path], pool, seed=seed, **filters)
        else:
            sentences = list(iter_sentences([path], **filters))
    except TextCorpusError as err:
        raise PromptError(str(err)) from None
    if not sentences:
        raise PromptError(f"{path}: no usable sentence ({MIN_WORDS}-{MAX_WORDS} words of text, "
                          "not dev/test text): is it empty?")
    return PromptSource(str(path), weight, tuple(sentences))


def parse_source_spec(spec: str) -> tuple[str, float]:
    """"PATH" or "PATH:WEIGHT" -> (PATH, WEIGHT); the weight defaults to 1."""
    path, sep, weight = spec.rpartition(":")
    if not sep:
        return spec, 1.0
    try:
        value = float(weight)
    except ValueError:
        return spec, 1.0  # a colon inside the path
    if value <= 0:
        raise PromptError(f"{spec}: a prompt source's weight must be positive")
    return path, value


def load_sources(specs: list[str], grammar_weight: float, exclude_files: list[str] = (), pool: int = 0,
                 seed: int = 0) -> list[PromptSource]:
    """Prompt sources from "PATH[:WEIGHT]" specs (a .jsonl manifest, a text file or a folder of them)
    plus the grammar when `grammar_weight` > 0. `exclude_files`: manifests or text files whose
    sentences are never prompts (dev and test text). `pool`: see `read_source`."""
    from asr.textcorpus import TextCorpusError, iter_sentences

    try:
        exclude = list(iter_sentences(exclude_files, deduplicate=False)) if exclude_files else []
    except TextCorpusError as err:
        raise PromptError(str(err)) from None
    sources = [read_source(path, weight, exclude, pool, seed) for path, weight in map(parse_source_spec, specs)]
    if grammar_weight > 0:
        sources.append(PromptSource(GRAMMAR, grammar_weight))
    if not sources:
        raise PromptError("no prompt source: give --prompts PATH or a --grammar-weight above 0")
    return sources
