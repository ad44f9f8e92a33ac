"""n-gram language models and lexicons for the beam decoder.

    asr lm build --text downloads/text --in-domain data/train.jsonl --exclude data/dev.jsonl \\
        --order 3 --vocab-size 100000 --prune 0,1,2 --out lm/          -> lm/lm.bin, lm/lm.arpa, lm/lexicon.txt
    asr lm build --text corpus.txt --order 6 --unit char --out lm_char/   -> lm_char/lm.bin, lm_char/lm.arpa
    asr lm download librispeech --out lm/librispeech                 -> the OpenSLR 11 LM + a lexicon

The corpus is any mix of text files (`.txt`, `.txt.gz`: one paragraph or sentence
per line), folders of them and JSONL manifests (their transcripts), read by
`asr.textcorpus.iter_sentences`: split into sentences, normalized as transcripts
are (`normalize_text`), deduplicated, and never containing a sentence of the
`--exclude` sources (dev/test transcripts; checked again on the written text).

* `--unit word` (default) writes a word n-gram over a vocabulary of the
  `--vocab-size` most frequent corpus words plus every word of the `--in-domain`
  sources, and a flashlight lexicon of that vocabulary, each word spelled in
  characters and closed by `|`:
      cat\tc a t |
  Decode with both (`--lexicon lm/lexicon.txt --lm lm/lm.bin`). N-grams with an
  out-of-vocabulary word are dropped; their mass goes to `<unk>`.
* `--unit char` writes an n-gram over characters with `|` between words, for
  lexicon-free decoding (`--lm lm_char/lm.bin`), which can still spell words the
  corpus never had.

Estimation is KenLM's `lmplz` (modified Kneser-Ney, on disk: memory is bounded by
`--memory` whatever the corpus size), with `--prune` count thresholds per order;
`build_binary` then writes the binary `lm.bin` (a trie, optionally quantized),
which loads in a fraction of the ARPA's time and without KenLM's loading banner.
Both tools are built from the KenLM sources of the `kenlm` PyPI sdist by `make`
(they are looked up next to the Python executable, then on PATH). The in-domain
text can be weighted by repeating it (`--in-domain-copies`). Our own streaming
pass holds only the word counts (for the vocabulary) and the dedupe filter.
Why KenLM and a general 50k-word LM by default: docs/design.md.
"""

from __future__ import annotations

import collections
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from asr.atomic import atomic_path, atomic_write, make_folder
from asr.errors import AsrError
from asr.text import WORD_SEPARATOR, normalize_text

ARPA_FILE = "lm.arpa"
BINARY_FILE = "lm.bin"
LEXICON_FILE = "lexicon.txt"
INFO_FILE = "build.json"
MAX_ORDER = 6  # KENLM_MAX_ORDER of our build and of flashlight-text's KenLM

OPENSLR_11 = "https://www.openslr.org/resources/11"
LIBRISPEECH_LMS = ("3-gram.pruned.1e-7", "3-gram.pruned.3e-7", "3-gram", "4-gram")  # smallest first
LIBRISPEECH_VOCAB = "librispeech-vocab.txt"


class CorpusError(AsrError):
    """A text corpus or LM setting that cannot be used to build an LM. The message names the file."""


def spell(sentence: str) -> str:
    """A sentence as the character LM sees it: "the cat" -> "t h e | c a t"."""
    return f" {WORD_SEPARATOR} ".join(" ".join(word) for word in sentence.split())


def kenlm_tool(name: str) -> str:
    """Path of KenLM's `lmplz` or `build_binary`: next to this Python (where `make` installs
    them), else on PATH. Raises CorpusError if neither has it."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        raise CorpusError(f"KenLM's {name} not found next to {sys.executable} or on PATH: run `make install` "
                          f"(it builds lmplz and build_binary from the kenlm sources)")
    return found


def write_training_text(sources: Sequence, path: str | os.PathLike, *, unit: str = "word",
                        in_domain: Sequence = (), in_domain_copies: int = 1,
                        exclude: Iterable[str] = ()) -> dict:
    """Stream the normalized sentences of `sources` (then `in_domain` x in_domain_copies) into
    `path`, one per line (spelled for unit="char"). Returns {"sentences", "words",
    "word_counts": Counter of corpus words, "in_domain_words": set}."""
    from asr.textcorpus import iter_sentences

    excluded = {s for s in map(normalize_text, exclude) if s}
    counts: collections.Counter = collections.Counter()
    in_domain_words: set[str] = set()
    n_sentences = n_words = 0
    with open(path, "w", encoding="utf-8") as f:
        def write(sentence: str) -> None:
            nonlocal n_sentences, n_words
            f.write((spell(sentence) if unit == "char" else sentence) + "\n")
            n_sentences += 1
            n_words += sentence.count(" ") + 1

        for sentence in iter_sentences(sources, exclude=excluded):
            counts.update(sentence.split())
            write(sentence)
        if in_domain:
            domain = list(iter_sentences(in_domain, exclude=excluded))
            in_domain_words.update(w for s in domain for w in s.split())
            for _ in range(in_domain_copies):
                for sentence in domain:
                    write(sentence)
    if not n_sentences:
        names = ", ".join(map(str, [*sources, *in_domain]))
        raise CorpusError(f"{names}: no text left after normalization")
    return {"sentences": n_sentences, "words": n_words, "word_counts": counts, "in_domain_words": in_domain_words}


def check_excluded(text_path: str | os.PathLike, exclude: Iterable[str], unit: str = "word") -> None:
    """Raise CorpusError if any sentence of `exclude` is a line of the LM training text."""
    excluded = {s for s in map(normalize_text, exclude) if s}
    if unit == "char":
        excluded = set(map(spell, excluded))
    with open(text_path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if line.rstrip("\n") in excluded:
                raise CorpusError(f"{text_path}:{line_no}: an excluded (dev/test) sentence is in the LM text")


def choose_vocabulary(counts: collections.Counter, size: int | None, keep: Iterable[str] = ()) -> list[str]:
    """The `size` most frequent words (ties by spelling; None: all) plus every word of `keep`, sorted."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    chosen = {word for word, _ in (ranked if size is None else ranked[:size])}
    return sorted(chosen | set(keep))


def run_lmplz(text_path: str | os.PathLike, order: int, arpa_path: str | os.PathLike, prune: Sequence[int] = (),
              vocabulary_path: str | os.PathLike | None = None, memory: str = "1G") -> int | None:
    """KenLM lmplz: modified Kneser-Ney `order`-gram of the text file, as ARPA (atomically).
    Returns lmplz's peak resident memory in kB."""
    with tempfile.TemporaryDirectory(prefix="lmplz-", dir=Path(arpa_path).parent) as tmp, \
            atomic_path(arpa_path) as out:
        command = [kenlm_tool("lmplz"), "-o", str(order), "-S", memory, "-T", f"{tmp}/", "--text", str(text_path),
                   "--arpa", str(out), "--discount_fallback"]
        if prune:
            command += ["--prune", *map(str, prune)]
        if vocabulary_path:
            command += ["--limit_vocab_file", str(vocabulary_path)]
        return _run(command, "lmplz")


def run_build_binary(arpa_path: str | os.PathLike, binary_path: str | os.PathLike,
                     quantize: int | None = None, memory: str = "1G") -> None:
    """KenLM build_binary: the ARPA as a trie (`quantize` bits per probability/backoff if given)."""
    with atomic_path(binary_path) as out:
        options = ["-q", str(quantize), "-b", str(quantize)] if quantize else []
        _run([kenlm_tool("build_binary"), "-s", "-S", memory, *options, "trie", str(arpa_path), str(out)],
             "build_binary")


def _run(command: list[str], name: str) -> int | None:
    """Run a KenLM tool quietly. Returns its peak resident memory in kB if it reports one
    (lmplz ends with "... RSSMax:51840 kB ..."; Linux counts the launching process's memory
    at launch in it too); raises CorpusError with its last lines if it fails."""
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    if done.returncode:
        last = [line for line in done.stdout.splitlines() if line.strip()][-3:]
        raise CorpusError(f"{name} failed (exit {done.returncode}): {' | '.join(last)}")
    peak = re.search(r"RSSMax:(\d+) kB", done.stdout)
    return int(peak.group(1)) if peak else None


def build_lm(text: str | os.PathLike | Sequence, order: int, out_dir: str | os.PathLike, unit: str = "word", *,
             in_domain: Sequence = (), in_domain_copies: int = 1, exclude: Sequence = (),
             vocab_size: int | None = None, prune: Sequence[int] = (), memory: str = "1G",
             quantize: int | None = None) -> dict:
    """`asr lm build`: out_dir/lm.arpa, lm.bin (+ lexicon.txt for unit="word") and build.json.

    text/in_domain/exclude: files, folders or manifests (asr.textcorpus); exclude's
    sentences never reach the LM. Returns build.json's contents: {"lm" (the binary),
    "arpa", "lexicon", "sentences", "words", "vocabulary", "seconds", ...}.
    """
    from asr.textcorpus import iter_sentences

    if unit not in ("word", "char"):
        raise CorpusError(f"unknown LM unit {unit!r} (choose from: word, char)")
    if not 2 <= order <= MAX_ORDER:
        raise CorpusError(f"n-gram order must be 2..{MAX_ORDER}, got {order}")
    if vocab_size is not None and vocab_size < 1:
        raise CorpusError(f"--vocab-size must be at least 1 word, got {vocab_size} (leave it out for every word)")
    if any(b < a for a, b in zip(prune, prune[1:])) or (prune and prune[0] != 0):
        raise CorpusError(f"--prune thresholds must start with 0 (unigrams) and never decrease, got {list(prune)}")
    sources = [text] if isinstance(text, (str, os.PathLike)) else list(text)
    for tool in ("lmplz", "build_binary"):
        kenlm_tool(tool)  # fail now, not after a long pass over the text
    start = time.perf_counter()
    out_dir = Path(out_dir)
    make_folder(out_dir)
    excluded = set(iter_sentences(exclude, deduplicate=False)) if exclude else set()
    with tempfile.TemporaryDirectory(prefix="lm-text-", dir=out_dir) as tmp:
        text_path = Path(tmp) / "text.txt"
        stats = write_training_text(sources, text_path, unit=unit, in_domain=in_domain,
                                    in_domain_copies=in_domain_copies, exclude=excluded)
        check_excluded(text_path, excluded, unit)
        info = {"unit": unit, "order": order, "sentences": stats["sentences"], "words": stats["words"],
                "excluded_sentences": len(excluded), "prune": list(prune), "quantize": quantize,
                "arpa": str(out_dir / ARPA_FILE), "lm": str(out_dir / BINARY_FILE), "lexicon": None}
        vocabulary_path = None
        if unit == "word":
            vocabulary = choose_vocabulary(stats["word_counts"], vocab_size, stats["in_domain_words"])
            vocabulary_path = Path(tmp) / "vocabulary.txt"
            vocabulary_path.write_text("".join(f"{w}\n" for w in vocabulary), encoding="utf-8")
            info["lexicon"] = str(out_dir / LEXICON_FILE)
            info["vocabulary"] = write_lexicon(vocabulary, info["lexicon"])
        info["lmplz_peak_kb"] = run_lmplz(text_path, order, info["arpa"], prune, vocabulary_path, memory)
    run_build_binary(info["arpa"], info["lm"], quantize, memory)
    info["seconds"] = round(time.perf_counter() - start, 1)
    with atomic_write(out_dir / INFO_FILE) as f:
        json.dump(info, f, indent=2)
    return info


def write_lexicon(words: Iterable[str], path: str | os.PathLike) -> int:
    """Flashlight lexicon: one `word<TAB>w o r d |` line per distinct word. Returns the count."""
    words = sorted(set(words))
    with atomic_write(path) as f:
        for word in words:
            f.write(f"{word}\t{' '.join(word)} {WORD_SEPARATOR}\n")
    return len(words)


def download_librispeech_lm(out_dir: str | os.PathLike, name: str = LIBRISPEECH_LMS[0]) -> dict:
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
    lm_path = out_dir / ARPA_FILE
    with gzip.open(arpa_gz, "rt", encoding="utf-8") as src, atomic_write(lm_path) as dst:
        for line in src:  # the words are upper case; "<UNK>" becomes KenLM's "<unk>"
            dst.write(line.lower())
    words = [normalize_text(w) for w in vocab.read_text(encoding="utf-8").split()]
    count = write_lexicon((w for w in words if w and " " not in w), out_dir / LEXICON_FILE)
    return {"lm": str(lm_path), "lexicon": str(out_dir / LEXICON_FILE), "words": count}
