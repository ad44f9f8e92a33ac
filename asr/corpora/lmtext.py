"""The English text the bundled LM and the synthetic-speech prompts were built from, fetched
file by file from a mirror and checked against a pinned list, or an existing copy checked.

    download_text("downloads", mirror=URL)   -> Path("downloads/text"), every file verified
    prepare_text("downloads/text")           -> the same folder, once every file is verified
    pin_text(folder), write_pinned(...)      the pinned list of a folder (how PINNED was made)

The CLI wrapper is `asr prepare text --root DIR [--mirror URL] [--dry-run] | --text-dir DIR`.

The corpus (about 104 MB; its README.md has the details):
  gutenberg/NUMBER.txt.gz       851 public-domain Project Gutenberg books (e-book NUMBER; one
                                book of unknown number has a hash), as collected in
                                github.com/rcdm-uga/Gutenberg_Text at commit
                                a0b16d35a9851168ce9ac649851c17b7ab08d48e, header and licence
                                footer removed, one paragraph per line
  gutenberg/catalog.tsv         file, e-book number, author, title and word count of each
  common_voice_sentences.txt    50,159 English sentences of Mozilla Common Voice (CC0 1.0),
                                github.com/skanderbenalaya/common-voice at commit
                                26249db69c2db684e9629e61ef8d5dc353df11f5, server/data/en/*.txt
  README.md                     sources, licences and processing
PINNED (lmtext.tsv, beside this file) lists every file with its size and SHA-256, so a
download is the same text, byte for byte, as the copy the bundled LM was built from, and
a copy on disk is used only when it is that text.

A mirror serves the files in this layout (MIRROR/gutenberg/1006.txt.gz; a file:// URL of a
copy works too). A file appears in the destination only once its SHA-256 matched; a cut-off
download resumes (asr.corpora.download). A mirror serving other files (such as the tiny
one the tests build) passes its own pinned list.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from asr.atomic import atomic_write
from asr.corpora.download import DownloadError, download_file, file_digest

PINNED = Path(__file__).with_name("lmtext.tsv")
# Where the files are published. None until the project hosts its copy: pass a mirror.
TEXT_MIRROR: str | None = None
HEADER = "path\tbytes\tsha256"


@dataclass(frozen=True)
class PinnedFile:
    """One file of the corpus: its path relative to the corpus folder, size and SHA-256."""

    path: str  # POSIX, e.g. "gutenberg/1006.txt.gz"
    bytes: int
    sha256: str


def read_pinned(path: str | os.PathLike = PINNED) -> list[PinnedFile]:
    """Read a pinned list (`#` comment lines, the HEADER line, then PATH BYTES SHA256 lines, tab-separated)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DownloadError(f"{path}: cannot read the pinned list ({getattr(err, 'strerror', None) or err})") from None
    files = []
    for line_no, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#") or line == HEADER:
            continue
        fields = line.split("\t")
        relative = PurePosixPath(fields[0])
        if (len(fields) != 3 or not fields[1].isdigit() or len(fields[2]) != 64 or relative.is_absolute()
                or ".." in relative.parts):
            raise DownloadError(f"{path}:{line_no}: expected 'PATH<TAB>BYTES<TAB>SHA256' with a relative PATH")
        files.append(PinnedFile(fields[0], int(fields[1]), fields[2].lower()))
    if not files:
        raise DownloadError(f"{path}: the pinned list names no file")
    return files


def pin_text(folder: str | os.PathLike) -> list[PinnedFile]:
    """Every file under `folder` (hidden ones and unfinished .part downloads aside), sorted."""
    folder = Path(folder)
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                   and not p.name.endswith(".part"))
    return [PinnedFile(p.relative_to(folder).as_posix(), p.stat().st_size, file_digest(p, "sha256", progress=False))
            for p in paths]


def write_pinned(files: list[PinnedFile], path: str | os.PathLike, comment: str = "") -> None:
    """Write `files` as a pinned list that read_pinned reads (`comment` lines first, each prefixed "# ")."""
    with atomic_write(path) as f:
        f.writelines(f"# {line}\n" for line in comment.splitlines())
        f.write(HEADER + "\n")
        f.writelines(f"{p.path}\t{p.bytes}\t{p.sha256}\n" for p in files)


def text_urls(mirror: str | None = None, pinned: list[PinnedFile] | None = None) -> dict[str, str]:
    """{relative path: URL} of every pinned file on `mirror` (default TEXT_MIRROR)."""
    base = mirror or TEXT_MIRROR
    if base is None:
        raise DownloadError("no public copy of the LM text is configured yet: pass --mirror URL (a copy in the "
                            "layout of asr/corpora/lmtext.tsv, file:// works) or --text-dir DIR (a copy on disk)")
    return {p.path: f"{base.rstrip('/')}/{p.path}" for p in pinned or read_pinned()}


def missing_files(folder: str | os.PathLike, pinned: list[PinnedFile] | None = None) -> list[PinnedFile]:
    """The pinned files not yet in `folder` (by name only: what a download would fetch)."""
    return [p for p in pinned or read_pinned() if not (Path(folder) / p.path).is_file()]


def download_text(root: str | os.PathLike, mirror: str | None = None,
                  pinned: list[PinnedFile] | None = None) -> Path:
    """Fetch every pinned file into ROOT/text (resuming, verifying each); returns ROOT/text.

    Files already there are checked, not fetched again. Raises DownloadError, naming the
    URL or file, for a missing file on the mirror, a dropped connection (run again to
    resume), a checksum mismatch (the bad download is deleted) or a changed file on disk.
    """
    pinned = pinned or read_pinned()
    folder = Path(root) / "text"
    urls = text_urls(mirror, pinned)
    todo = missing_files(folder, pinned)
    for p in tqdm(todo, desc="download LM text", unit="file", disable=None, file=sys.stderr):
        download_file(urls[p.path], folder / p.path, sha256=p.sha256, progress=False)
    print(f"{folder}: fetched {len(todo)} of {len(pinned)} files", file=sys.stderr)
    return prepare_text(folder, pinned)


def prepare_text(folder: str | os.PathLike, pinned: list[PinnedFile] | None = None) -> Path:
    """Check that `folder` holds every pinned file, unchanged; returns it. Raises DownloadError
    naming the missing or changed files (other files in it are left alone)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DownloadError(f"{folder}: no such folder (the LM text: asr prepare text --root DIR fetches it)")
    missing, changed = [], []
    for p in tqdm(pinned or read_pinned(), desc=f"verify {folder}", unit="file", disable=None, file=sys.stderr):
        path = folder / p.path
        if not path.is_file():
            missing.append(p.path)
        elif path.stat().st_size != p.bytes or file_digest(path, "sha256", progress=False) != p.sha256:
            changed.append(p.path)
    if missing or changed:
        what = "; ".join(f"{len(names)} {kind} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
                         for kind, names in (("missing", missing), ("changed", changed)) if names)
        raise DownloadError(f"{folder}: not the pinned LM text: {what}; asr prepare text --root DIR fetches "
                            "what is missing (delete changed files first)")
    return folder
