"""The adapted model's decoding files: the base LM beside it, a lexicon with the new words, tuned weights.

    stored, new_words = write_decoding_files(base_options, Path("me.pt"), words)
    # me.lm.bin (a hard link or a copy of the base LM), me.lexicon.txt (base words + `words`);
    # `stored` is the checkpoint's `decoding` dict, naming them relative to me.pt's folder
    best = tune_on_held_out(loaded, held_out, options)    # lm_weight / word_score on held-out speech

New words reach the decoder through the lexicon. The bundled LM is a KenLM binary
whose source text users do not have, so it cannot be rebuilt with them; a word it
has never seen is scored as its `<unk>`, the probability mass it keeps for
every out-of-vocabulary word, which lets the beam search choose a new word where
the audio says it (a lexicon-constrained search cannot spell a word that is not in
the lexicon at all). recipes/adapt/RESULTS.md measures how often new words come out.

The files are named after the model (`STEM.lm.bin`, `STEM.lexicon.txt`) so that several
adapted models can share a folder; move or copy them together with the model.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from asr.atomic import atomic_path
from asr.checkpoint import LoadedModel
from asr.data.manifest import Utterance
from asr.decode import DecodingOptions
from asr.lm import write_lexicon
from asr.text import normalize_text
from asr.tune import candidates, compute_emissions, tune

LM_WEIGHTS = (0.5, 1.0, 1.5, 2.0)  # the grid tuned on held-out speech, around the bundled model's 1.0
WORD_SCORES = (-1.0, 0.0, 1.0, 2.0)


def words_of(texts: Iterable[str]) -> set[str]:
    """The distinct words of `texts` after normalization."""
    return {word for text in texts for word in normalize_text(text).split()}


def read_lexicon_words(path: str | os.PathLike) -> set[str]:
    """The words (first column) of a flashlight lexicon."""
    with open(path, encoding="utf-8") as f:
        return {line.split("\t", 1)[0] for line in f if line.strip()}


def write_decoding_files(base: DecodingOptions, out: Path, words: set[str]) -> tuple[dict, list[str]]:
    """Put the base options' LM (linked, else copied) and lexicon (+ `words`) beside checkpoint `out`.
    Returns (the checkpoint's `decoding` dict, with names relative to out's folder; the words new to
    the lexicon). A base without a lexicon (greedy, or lexicon-free beam) spells any word: no lexicon."""
    stored = dataclasses.asdict(base)
    new_words: list[str] = []
    if base.lm:
        lm = out.with_name(f"{out.stem}.lm{Path(base.lm).suffix}")
        _link_or_copy(Path(base.lm), lm)
        stored["lm"] = lm.name
    if base.lexicon:
        known = read_lexicon_words(base.lexicon)
        new_words = sorted(words - known)
        lexicon = out.with_name(f"{out.stem}.lexicon.txt")
        write_lexicon(known | words, lexicon)
        stored["lexicon"] = lexicon.name
    return stored, new_words


def tune_on_held_out(loaded: LoadedModel, held_out: list[Utterance], options: DecodingOptions,
                     log: Callable[[str], None] = lambda _: None) -> tuple[DecodingOptions, list[dict]]:
    """The (lm_weight, word_score) of the LM_WEIGHTS x WORD_SCORES grid with the lowest WER on
    `held_out`, the other options as given. Returns (options, one row per pair)."""
    emissions = compute_emissions(loaded, held_out, num_workers=0)
    return tune(emissions, held_out, loaded.tokenizer, options, candidates(LM_WEIGHTS, WORD_SCORES), log=log)


def _link_or_copy(src: Path, dest: Path) -> None:
    """A hard link (no extra disk for a 15 MB LM per model) where the filesystem allows, else a copy."""
    if dest.exists() and dest.samefile(src):
        return
    with atomic_path(dest) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
