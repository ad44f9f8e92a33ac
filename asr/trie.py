"""The lexicon trie of lexicon-constrained beam search: read fast, and cached between runs.

    lexicon = read_lexicon(path, tokens, lm_path, score_words)   # Lexicon: words, spellings, LM scores
    trie = build_trie(lexicon, len(tokens), silence_id)         # flashlight Trie, smeared

Building the decoder of the bundled model (50,000 words, a word LM) cost about 1 s of each
`asr transcribe` when torchaudio's `ctc_decoder` did it: flashlight's `load_words` turned the
file into a Python dict of lists (0.2 s), `create_word_dict` (0.1 s), 476,000 `get_index` calls
to spell the words (0.25 s), 50,000 LM look-ups (0.1 s), then the trie itself (insert 0.17 s,
smear 0.03 s). Here the lexicon is parsed once into flat arrays (`Lexicon`): the words, each
spelling's token ids and each word's unigram LM score, and those arrays are saved as a cache
(`.npz`), so a later run reads them back in a few milliseconds and only inserts them into
the trie. flashlight's Trie cannot be serialized, so the inserts remain.

The cache is never stale: its name holds a key over everything the arrays depend on (the
lexicon's bytes, the LM file's size, mtime and first and last 64 KiB, the tokens, the cache
format), the key is stored inside it too, and a file that does not load, holds another
key or fails a sanity check is ignored (and rebuilt). Hashing the whole LM (15 MB for the
bundled one) would cost 25-65 ms on every start; size + mtime + its ends catches every
rewrite `asr lm build` or a copy makes. Where it lives: next to the lexicon
(`lexicon.txt.<key>.trie.npz`), or, where that folder is read-only (an installed package),
in `$XDG_CACHE_HOME/asr/tries/` (default `~/.cache`); if neither can be written, it is
built in memory each time. Writes are atomic (asr.atomic), so a killed run leaves no torn cache.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.atomic import atomic_path

CACHE_FORMAT = 1  # bump when the arrays or their meaning change
CACHE_SUFFIX = ".trie.npz"
_ENDS = 65536  # bytes at each end of the LM that go into the key


class LexiconFormatError(ValueError):
    """A lexicon line that cannot be spelled with the model's tokens."""


@dataclass
class Lexicon:
    """A lexicon as flat arrays (a word may have several spellings).

    words     (words,) the distinct words, in the file's order
    tokens    (total_tokens,) int32: the token ids of all spellings, one after the other
    offsets   (spellings + 1,) int64: spelling i is tokens[offsets[i]:offsets[i + 1]]
    word_ids  (spellings,) int32: the word (index into `words`) each spelling spells
    scores    (words,) float32: each word's unigram score from the LM (0 without one)
    """

    words: list[str]
    tokens: np.ndarray
    offsets: np.ndarray
    word_ids: np.ndarray
    scores: np.ndarray

    def check(self, vocab_size: int) -> None:
        """ValueError unless the arrays fit together (a cache that passes this is safe to insert)."""
        spellings = len(self.word_ids)
        if (self.offsets.shape != (spellings + 1,) or self.offsets[0] != 0 or self.offsets[-1] != len(self.tokens)
                or np.any(np.diff(self.offsets) <= 0) or self.scores.shape != (len(self.words),)):
            raise ValueError("inconsistent lexicon arrays")
        if len(self.tokens) and not (0 <= self.tokens.min() and self.tokens.max() < vocab_size):
            raise ValueError("token id out of range")
        if spellings and not (0 <= self.word_ids.min() and self.word_ids.max() < len(self.words)):
            raise ValueError("word id out of range")


def parse_lexicon(text: str, token_ids: dict[str, int]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(words, tokens, offsets, word_ids) of a flashlight lexicon: `word<whitespace>t o k e n s` lines,
    a word repeated for another spelling, blank lines skipped (as flashlight's load_words reads it).
    Raises LexiconFormatError naming the line for a word without a spelling or an unknown token."""
    words: dict[str, int] = {}
    tokens: list[int] = []
    offsets, word_ids = [0], []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) == 1:
            raise LexiconFormatError(f"line {number}: {fields[0]!r} has no spelling")
        try:
            tokens.extend(token_ids[t] for t in fields[1:])
        except KeyError as err:
            raise LexiconFormatError(f"line {number}: {err.args[0]!r} is not one of the model's tokens") from None
        offsets.append(len(tokens))
        word_ids.append(words.setdefault(fields[0], len(words)))
    return (list(words), np.array(tokens, dtype=np.int32), np.array(offsets, dtype=np.int64),
            np.array(word_ids, dtype=np.int32))


def cache_key(lexicon: str | os.PathLike, tokens: Sequence[str], lm: str | os.PathLike | None) -> str:
    """A hex digest of everything a Lexicon's arrays depend on (see the module docstring)."""
    key = hashlib.sha256(f"asr-trie {CACHE_FORMAT}\n".encode())
    key.update(Path(lexicon).read_bytes())
    key.update(("\ntokens " + " ".join(tokens) + "\n").encode())
    if lm is not None:
        stat = os.stat(lm)
        key.update(f"lm {stat.st_size} {stat.st_mtime_ns}\n".encode())
        with open(lm, "rb") as f:
            key.update(f.read(_ENDS))
            f.seek(max(0, stat.st_size - _ENDS))
            key.update(f.read(_ENDS))
    return key.hexdigest()[:32]


def cache_paths(lexicon: str | os.PathLike, key: str) -> list[Path]:
    """Where a cache for `key` may be: next to the lexicon, then in the user's cache folder."""
    lexicon = Path(lexicon).resolve()
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asr" / "tries"
    return [lexicon.with_name(f"{lexicon.name}.{key}{CACHE_SUFFIX}"), user / f"{key}{CACHE_SUFFIX}"]


def load_cached(path: Path, key: str, vocab_size: int) -> Lexicon | None:
    """The Lexicon cached at `path` under `key`, or None if it is missing, another key's, or damaged."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if data["key"].tobytes().decode() != key:
                return None
            lexicon = Lexicon(data["words"].tobytes().decode().split("\n"), data["tokens"], data["offsets"],
                              data["word_ids"], data["scores"])
        lexicon.check(vocab_size)
        return lexicon
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError):
        return None  # not there, torn, truncated or foreign: rebuilt by the caller


def save_cache(lexicon: Lexicon, key: str, paths: list[Path]) -> Path | None:
    """Write the cache to the first of `paths` that can be written (atomically); None if none can."""
    arrays = {"key": np.frombuffer(key.encode(), dtype=np.uint8),
              "words": np.frombuffer("\n".join(lexicon.words).encode(), dtype=np.uint8),
              "tokens": lexicon.tokens, "offsets": lexicon.offsets, "word_ids": lexicon.word_ids,
              "scores": lexicon.scores}
    for path in paths:
        try:
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez(f, **arrays)
            return path
        except OSError:
            continue
    return None


def read_lexicon(path: str | os.PathLike, tokens: Sequence[str], lm: str | os.PathLike | None,
                 score_words: Callable[[list[str]], np.ndarray], use_cache: bool = True) -> Lexicon:
    """The Lexicon of the file at `path` spelled with `tokens`, its words scored by `score_words`
    (words -> (words,) float32 unigram LM scores), from the cache when there is a valid one.
    `lm` is the LM file the scores come from (None: none), part of the cache key."""
    key = cache_key(path, tokens, lm) if use_cache else ""
    paths = cache_paths(path, key) if use_cache else []
    for cached in paths:
        lexicon = load_cached(cached, key, len(tokens))
        if lexicon is not None:
            return lexicon
    words, spelled, offsets, word_ids = parse_lexicon(Path(path).read_text(encoding="utf-8"),
                                                      {t: i for i, t in enumerate(tokens)})
    lexicon = Lexicon(words, spelled, offsets, word_ids, np.asarray(score_words(words), dtype=np.float32))
    if use_cache and save_cache(lexicon, key, paths) == paths[0]:
        for old in paths[0].parent.glob(f"{Path(path).name}.*{CACHE_SUFFIX}"):  # caches of older versions
            if old != paths[0]:
                old.unlink(missing_ok=True)
    return lexicon


def build_trie(lexicon: Lexicon, vocab_size: int, silence_id: int):
    """flashlight's Trie of the lexicon's spellings, each labelled with its word and unigram
    score, smeared with the maximum (what torchaudio's ctc_decoder builds)."""
    from flashlight.lib.text.decoder import SmearingMode, Trie

    trie = Trie(vocab_size, silence_id)
    offsets = lexicon.offsets.tolist()
    tokens, scores = lexicon.tokens.tolist(), lexicon.scores.tolist()
    for i, word in enumerate(lexicon.word_ids.tolist()):
        trie.insert(tokens[offsets[i]: offsets[i + 1]], word, scores[word])
    trie.smear(SmearingMode.MAX)
    return trie
