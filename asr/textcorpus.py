"""Text corpora for language models and synthesis prompts: files -> normalized sentences, streamed.

    from asr.textcorpus import iter_sentences, sample_sentences

    dev = set(iter_sentences(["recipes/speechocean762/data/dev.jsonl"], deduplicate=False))
    for sentence in iter_sentences(["downloads/text"], min_words=3, max_words=25, exclude=dev):
        ...                                   # "it was the best of times"
    prompts = sample_sentences(["downloads/text"], 5000, seed=0, min_words=3, max_words=25, exclude=dev)

A source is a file or a folder:
* `.txt` / `.txt.gz` (UTF-8): one paragraph per line, as in the LM text's Gutenberg
  books (a corpus with one sentence per line reads the same way). Square-bracket
  notes ("[Illustration: ...]", "[Footnote 3: ...]", "[5]") are removed, headings
  ("CHAPTER XII. THE RETURN", "IV.", "PREFACE") are dropped (`is_heading`), and each
  paragraph is split into sentences (`split_sentences`, the sentencex splitter,
  which knows that "Mr." or "St." does not end a sentence).
* `.jsonl`: a manifest; each transcript is one sentence (not split, no heading rules).
* a folder: its `.txt`, `.txt.gz` and `.jsonl` files, recursively, in name order.
  (A file named explicitly is read as text whatever its name, unless it ends in `.jsonl`.)

Every sentence goes through `asr.text.normalize_text`, then the filters: word count
in [min_words, max_words], not in `exclude` (e.g. the dev/test transcripts, compared
after normalization), and not seen before (`deduplicate`). Memory stays bounded
whatever the corpus size: files are read line by line and duplicates are found
with a fixed-size Bloom filter (`SeenSentences`, 32 MiB by default).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from asr.errors import AsrError
from asr.text import normalize_text

TEXT_SUFFIXES = (".txt", ".txt.gz")
MANIFEST_SUFFIX = ".jsonl"

_BRACKETED = re.compile(r"\[[^\[\]]*\]")
_ROMAN = r"(?=[IVXLCDM])M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})(?<=[IVXLCDM])\b"  # not empty
_ORDINAL_WORD = r"FIRST|SECOND|THIRD|FOURTH|FIFTH|SIXTH|SEVENTH|EIGHTH|NINTH|TENTH|LAST"
_NUMBER_WORD = r"ONE|TWO|THREE|FOUR|FIVE|SIX|SEVEN|EIGHT|NINE|TEN|ELEVEN|TWELVE|(?:THE\s+)?(?:%s)" % _ORDINAL_WORD
_HEADING_WORD = r"CHAPTER|BOOK|PART|VOLUME|VOL\.|ACT|SCENE|CANTO|STAVE|SECTION|LETTER|NOTE|CHAP\."
# "CHAPTER XII", "Chapter 4. The Return", "BOOK THE FIRST", "Act I, Scene 2"
_NUMBERED_HEADING = re.compile(r"^\W*(?:%s)\s+(?:[0-9]+|%s|%s)\b" % (_HEADING_WORD, _ROMAN, _NUMBER_WORD),
                               re.IGNORECASE)
# "IV.", "XII", "2. VII. HER EARLIER INCARNATIONS", "XXXV. Conquests in Persia.", "X GENERAL ALISON"
# (but not "I WENT HOME": a bare "I" before upper-case words is the pronoun of an upper-case corpus)
_ROMAN_HEADING = re.compile(
    r"^\W*(?:[0-9]+\.\s*)?%s(?:[.:]|\s*$|(?<!^I)(?<!\WI)\s+[A-Z][A-Z'\s,-]*$)" % _ROMAN)
_NUMERIC_HEADING = re.compile(r"^\W*[0-9]+\W*$")
_WORD_HEADINGS = {"preface", "contents", "introduction", "footnotes", "footnote", "appendix", "index",
                  "epilogue", "prologue", "the end", "finis", "illustrations", "notes", "table of contents"}
_MAX_HEADING_WORDS = 12
_TITLES = ("Mr", "Mrs", "Ms", "Dr", "Messrs", "Mme", "Mlle", "Prof", "Rev", "Capt", "Col", "Gen", "Lieut", "Lt",
           "Sgt", "Gov", "Hon", "Mt", "Ft")  # abbreviations that come before a name, so never end a sentence
_ENDS_WITH_TITLE = re.compile(r"\b(?:%s)\.\s*$" % "|".join(_TITLES))


class TextCorpusError(AsrError):
    """A text source that cannot be read. The message names the file."""


def iter_sentences(
    sources: Iterable[str | os.PathLike],
    *,
    min_words: int = 1,
    max_words: int | None = None,
    exclude: Iterable[str] = (),
    deduplicate: bool = True,
    dedupe_bytes: int = 32 << 20,
) -> Iterator[str]:
    """Normalized sentences of `sources` (files or folders, see the module docstring), in file order.

    min_words/max_words bound the word count (inclusive; None: no maximum).
    exclude: sentences never to yield (raw or normalized: they are normalized here).
    deduplicate: yield each sentence once (a Bloom filter of `dedupe_bytes` bytes; with
        the default 32 MiB, fewer than 1 in 10,000 new sentences is wrongly taken for a
        repeat up to 10 million distinct sentences).
    Raises TextCorpusError for a missing source, an unreadable file, or no files in a folder.
    """
    excluded = {s for s in map(normalize_text, exclude) if s}
    seen = SeenSentences(dedupe_bytes) if deduplicate else None
    for path in iter_files(sources):
        for sentence in _file_sentences(path):
            n_words = sentence.count(" ") + 1
            if n_words < min_words or (max_words is not None and n_words > max_words):
                continue
            if sentence in excluded or (seen is not None and not seen.add(sentence)):
                continue
            yield sentence


def sample_sentences(sources: Iterable[str | os.PathLike], count: int, seed: int = 0, **filters) -> list[str]:
    """A uniform random sample of `count` sentences of iter_sentences(sources, **filters)
    (reservoir sampling: one pass, memory for `count` sentences), in corpus order.
    The same corpus, filters and seed give the same sample."""
    rng = random.Random(seed)
    reservoir: list[tuple[int, str]] = []
    for i, sentence in enumerate(iter_sentences(sources, **filters)):
        if i < count:
            reservoir.append((i, sentence))
        else:
            j = rng.randrange(i + 1)
            if j < count:
                reservoir[j] = (i, sentence)
    return [sentence for _, sentence in sorted(reservoir)]


def iter_files(sources: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """The corpus files of `sources`: files as given, folders expanded (recursively, sorted by path)."""
    for source in sources:
        source = Path(source)
        if source.is_dir():
            files = sorted(p for p in source.rglob("*") if p.is_file() and _is_corpus_file(p))
            if not files:
                raise TextCorpusError(f"{source}: no {', '.join(TEXT_SUFFIXES)} or {MANIFEST_SUFFIX} files")
            yield from files
        elif source.is_file():
            yield source  # a file named explicitly is read as text unless it is a .jsonl manifest
        else:
            raise TextCorpusError(f"{source}: text corpus not found")


def iter_paragraphs(path: str | os.PathLike) -> Iterator[str]:
    """The non-empty lines of a `.txt` or `.txt.gz` file, stripped (one paragraph each)."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    yield line
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise TextCorpusError(f"{path}: cannot read text ({err})") from None


def split_sentences(paragraph: str) -> list[str]:
    """A paragraph -> its sentences (raw text), by the sentencex splitter, except that a title
    before a name ("Dr.", "Lieut.": `_TITLES`) never ends a sentence.

        split_sentences('Then Dr. Who left. He said: "Hello!"') -> ['Then Dr. Who left. ', 'He said: "Hello!"']
    """
    from sentencex import segment

    sentences: list[str] = []
    for piece in segment("en", paragraph):
        if sentences and _ENDS_WITH_TITLE.search(sentences[-1]):
            sentences[-1] += piece
        else:
            sentences.append(piece)
    return sentences


def is_heading(paragraph: str) -> bool:
    """A chapter/part heading, a bare Roman or Arabic numeral, or a front/back-matter title."""
    if len(paragraph.split()) > _MAX_HEADING_WORDS:
        return False
    if _NUMBERED_HEADING.match(paragraph) or _ROMAN_HEADING.match(paragraph) or _NUMERIC_HEADING.match(paragraph):
        return True
    return paragraph.strip(" .:!*_-").lower() in _WORD_HEADINGS


class SeenSentences:
    """Membership for deduplication in fixed memory: a Bloom filter of `size_bytes` bytes.

    `add(s)` is True the first time `s` is added and False after. It can wrongly say
    False for a new sentence (rarely: see iter_sentences), never True for a repeat.
    """

    def __init__(self, size_bytes: int = 32 << 20, hashes: int = 7):
        self.bits = bytearray(size_bytes)
        self.n_bits = size_bytes * 8
        self.hashes = hashes

    def add(self, sentence: str) -> bool:
        digest = hashlib.blake2b(sentence.encode("utf-8"), digest_size=16).digest()
        first, step = int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little") | 1
        new = False
        for i in range(self.hashes):  # double hashing: bit i is first + i * step
            position = (first + i * step) % self.n_bits
            mask = 1 << (position & 7)
            if not self.bits[position >> 3] & mask:
                self.bits[position >> 3] |= mask
                new = True
        return new


def _is_corpus_file(path: Path) -> bool:
    return path.name.endswith(TEXT_SUFFIXES) or path.suffix == MANIFEST_SUFFIX


def _file_sentences(path: Path) -> Iterator[str]:
    """Normalized, non-empty sentences of one file (before the word-count, exclude and dedupe filters)."""
    if path.suffix == MANIFEST_SUFFIX:
        from asr.data.manifest import read_manifest

        for utt in read_manifest(path):
            sentence = normalize_text(utt.text)
            if sentence:
                yield sentence
        return
    for paragraph in iter_paragraphs(path):
        paragraph = _BRACKETED.sub(" ", paragraph)
        if is_heading(paragraph):
            continue
        for raw in split_sentences(paragraph):
            sentence = normalize_text(raw)
            if sentence:
                yield sentence
