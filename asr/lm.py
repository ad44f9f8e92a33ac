"""n-gram language models and lexicons for the beam decoder.

    asr lm build --text corpus.txt --order 3 --out lm/          -> lm/lm.arpa, lm/lexicon.txt
    asr lm build --text corpus.txt --order 6 --unit char --out lm_char/   -> lm_char/lm.arpa
    asr lm download librispeech --out lm/librispeech             -> the OpenSLR 11 LM + a lexicon

The corpus is a text file with one sentence per line, or a JSONL manifest (its
transcripts are used). Every line goes through `normalize_text`, as transcripts do.

* `--unit word` (default) writes a word n-gram and a flashlight lexicon of the
  corpus's words, each spelled in characters and closed by `|`:
      cat\tc a t |
  Decode with both (`--lexicon lm/lexicon.txt --lm lm/lm.arpa`).
* `--unit char` writes an n-gram over characters with `|` between words, for
  lexicon-free decoding (`--lm lm_char/lm.arpa`), which can still spell words the
  corpus never had.

The ARPA file comes from kaldingram (Kneser-Ney back-off, SRILM-compatible). We
compared it with arpabo, the other maintained pure-Python ARPA builder on PyPI,
on the speechocean762 train transcripts (3-gram): kaldingram's output loads
directly in KenLM and its conditional distributions sum to at most 1 (0.77-1.00
over the vocabulary for the three contexts we checked); arpabo 0.3.0 writes a header
line before `\\data\\` and space-separated columns that KenLM refuses, and its
Kneser-Ney distributions summed to 1.27-1.40 after repairing the format, so its
lower perplexity was not a real one. KenLM's own `lmplz` is not on PyPI.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
from collections.abc import Iterable
from pathlib import Path

from asr.atomic import atomic_write
from asr.errors import AsrError
from asr.extras import require
from asr.text import WORD_SEPARATOR, normalize_text

LM_FILE = "lm.arpa"
LEXICON_FILE = "lexicon.txt"

OPENSLR_11 = "https://www.openslr.org/resources/11"
LIBRISPEECH_LMS = ("3-gram.pruned.1e-7", "3-gram.pruned.3e-7", "3-gram", "4-gram")  # smallest first
LIBRISPEECH_VOCAB = "librispeech-vocab.txt"


class CorpusError(AsrError):
    """A text corpus that cannot be used to build an LM. The message names the file."""


def read_corpus(path: str | os.PathLike) -> list[str]:
    """Normalized, non-empty sentences of a text file (one per line) or a JSONL manifest."""
    path = Path(path)
    if path.suffix == ".jsonl":
        from asr.data.manifest import read_manifest

        lines = [utt.text for utt in read_manifest(path)]
    else:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise CorpusError(f"{path}: cannot read corpus ({err})") from None
    sentences = [s for s in map(normalize_text, lines) if s]
    if not sentences:
        raise CorpusError(f"{path}: no text left after normalization")
    return sentences


def spell(sentence: str) -> str:
    """A sentence as the character LM sees it: "the cat" -> "t h e | c a t"."""
    return f" {WORD_SEPARATOR} ".join(" ".join(word) for word in sentence.split())


def build_arpa(sentences: Iterable[str], order: int, path: str | os.PathLike) -> None:
    """Train a Kneser-Ney n-gram of `order` on space-separated tokens and write it as ARPA."""
    NgramCounts = require("kaldingram.train", "beam", "building an n-gram LM").NgramCounts

    if not 2 <= order <= 5:  # kaldingram goes up to 5; KenLM loads bigrams and up
        raise CorpusError(f"n-gram order must be 2..5, got {order}")
    counts = NgramCounts(order)
    with contextlib.redirect_stderr(io.StringIO()):  # kaldingram draws a progress bar per step
        for sentence in sentences:
            counts.add_raw_counts_from_line(sentence)
        counts.cal_discounting_constants()
        counts.cal_f()
        counts.cal_bow()
        with atomic_write(path) as f:
            counts.print_as_arpa(fout=f)


def write_lexicon(words: Iterable[str], path: str | os.PathLike) -> int:
    """Flashlight lexicon: one `word<TAB>w o r d |` line per distinct word. Returns the count."""
    words = sorted(set(words))
    with atomic_write(path) as f:
        for word in words:
            f.write(f"{word}\t{' '.join(word)} {WORD_SEPARATOR}\n")
    return len(words)


def build_lm(corpus: str | os.PathLike, order: int, out_dir: str | os.PathLike, unit: str = "word") -> dict:
    """`asr lm build`: ARPA (+ lexicon for unit="word") in out_dir. Returns {"lm", "lexicon", ...}."""
    if unit not in ("word", "char"):
        raise CorpusError(f"unknown LM unit {unit!r} (choose from: word, char)")
    sentences = read_corpus(corpus)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"lm": str(out_dir / LM_FILE), "lexicon": None, "sentences": len(sentences)}
    if unit == "char":
        build_arpa(map(spell, sentences), order, result["lm"])
        return result
    build_arpa(sentences, order, result["lm"])
    result["lexicon"] = str(out_dir / LEXICON_FILE)
    result["words"] = write_lexicon((w for s in sentences for w in s.split()), result["lexicon"])
    return result


def download_librispeech(out_dir: str | os.PathLike, name: str = LIBRISPEECH_LMS[0]) -> dict:
    """`asr lm download librispeech`: OpenSLR 11's `name` LM (lower-cased to match our
    tokenizer) as out_dir/lm.arpa, and a character lexicon of its vocabulary."""
    from asr.corpora.download import download_file

    if name not in LIBRISPEECH_LMS:
        raise CorpusError(f"unknown LibriSpeech LM {name!r} (choose from: {', '.join(LIBRISPEECH_LMS)})")
    out_dir = Path(out_dir)
    downloads = out_dir / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    arpa_gz, vocab = downloads / f"{name}.arpa.gz", downloads / LIBRISPEECH_VOCAB
    download_file(f"{OPENSLR_11}/{name}.arpa.gz", arpa_gz)  # no md5 pinned: none we could verify
    download_file(f"{OPENSLR_11}/{LIBRISPEECH_VOCAB}", vocab)
    lm_path = out_dir / LM_FILE
    with gzip.open(arpa_gz, "rt", encoding="utf-8") as src, atomic_write(lm_path) as dst:
        for line in src:  # the words are upper case; "<UNK>" becomes KenLM's "<unk>"
            dst.write(line.lower())
    words = [normalize_text(w) for w in vocab.read_text(encoding="utf-8").split()]
    count = write_lexicon((w for w in words if w and " " not in w), out_dir / LEXICON_FILE)
    return {"lm": str(lm_path), "lexicon": str(out_dir / LEXICON_FILE), "words": count}
