"""speechocean762: download it from OpenSLR (resource 101) and write train/dev manifests.

    download_speechocean762("downloads")              -> Path("downloads/speechocean762")
    prepare_speechocean762("downloads/speechocean762", "data")
        -> {"train": [Utterance, ...], "dev": [...]}, and data/train.jsonl, data/dev.jsonl

The CLI wrapper is `asr prepare speechocean762 --root DIR` (download, then prepare)
or `--corpus-dir DIR` (a copy already on disk).

The archive (CC BY 4.0; Junbo Zhang et al., Interspeech 2021, arXiv:2104.01378)
unpacks to speechocean762/ with Kaldi data dirs train/ and test/ (2,500 utterances
and 125 speakers each, speaker-disjoint), WAVE/SPEAKERnnnn/*.WAV (16 kHz 16-bit)
named in their wav.scp relative to the corpus folder, and resource/ (scores).

Dev is the held-out speaker set: a copy with a dev/ folder (such as the project's
shared one, which keeps 63 of the 125 test speakers) uses it; the original download
has none, so its whole test/ set (125 speakers) becomes dev. Dev figures from the
two are therefore not the same measurement.

Dev is also split by speaker into a fixed reporting part, REPORT_SPEAKERS (24 of the
shared copy's 63 dev speakers, 480 utterances), and the rest. A model may train on
`dev_rest` (real speech is scarce); its figures then come from `dev_report` only.

OpenSLR publishes no checksum for this archive, so without an MD5 the download is
checked against the archive's published size (ARCHIVE_BYTES, as in Kaldi's
egs/gop_speechocean762 recipe); a mirror serving another archive passes its MD5.
"""

from __future__ import annotations

import os
from pathlib import Path

from asr.corpora.download import (
    DownloadError,
    done_marker,
    download_and_extract,
    download_file,
)
from asr.corpora.importers import import_kaldi_dir
from asr.data.manifest import ManifestError, Utterance, write_manifest

OPENSLR = "https://www.openslr.org/resources"
RESOURCE = 101
ARCHIVE = "speechocean762.tar.gz"
ARCHIVE_BYTES = 520_810_923  # ~497 MiB

# The reporting speakers: within each (age <= 12 / 13-17 / adult) x gender group of the
# shared copy's dev speakers, the first 38% (24 / 63) by SHA-1 of the speaker id, so that
# the part has the whole set's mix of children and adults, women and men. All of them are
# also test/ speakers of the original archive, so the split means the same with either.
REPORT_SPEAKERS = frozenset({
    "0003", "0094", "0111", "0120", "1030", "1075", "1099", "1181", "1228", "1465", "1501", "2451",
    "2917", "3631", "5039", "5220", "5547", "8153", "9555", "9610", "9622", "9626", "9635", "9647",
})


def archive_url(mirror: str | None = None) -> str:
    """URL of the archive; a mirror stands for OPENSLR (it serves MIRROR/101/speechocean762.tar.gz)."""
    return f"{(mirror or OPENSLR).rstrip('/')}/{RESOURCE}/{ARCHIVE}"


def download_speechocean762(root: str | os.PathLike, mirror: str | None = None, md5: str | None = None) -> Path:
    """Download and extract the corpus into ROOT/speechocean762 (the archive stays in ROOT).

    Finished work is skipped and a cut-off download resumes (see asr.corpora.download).
    Returns the corpus folder. Raises DownloadError.
    """
    root, url = Path(root), archive_url(mirror)
    if not done_marker(root, url).is_file():
        archive = download_file(url, root / ARCHIVE, md5)
        size = archive.stat().st_size
        if md5 is None and size != ARCHIVE_BYTES:
            raise DownloadError(f"{archive}: {size} bytes, but the OpenSLR archive has {ARCHIVE_BYTES}; "
                                "delete it to download again (or pass the MD5 of your mirror's archive)")
    download_and_extract(url, md5, root)
    corpus = root / "speechocean762"
    if not (corpus / "train" / "wav.scp").is_file():
        raise DownloadError(f"{url}: archive has no speechocean762/train/wav.scp")
    return corpus


def dev_dir(corpus_dir: str | os.PathLike) -> Path:
    """The held-out speakers' data dir: dev/ if the copy has one, else the original test/."""
    corpus_dir = Path(corpus_dir)
    for name in ("dev", "test"):
        if (corpus_dir / name / "wav.scp").is_file():
            return corpus_dir / name
    raise ManifestError(f"{corpus_dir}: no dev/ or test/ Kaldi data dir (not a speechocean762 copy?)")


def prepare_speechocean762(corpus_dir: str | os.PathLike, manifest_dir: str | os.PathLike,
                           jobs: int | None = None) -> dict[str, list[Utterance]]:
    """Write MANIFEST_DIR/train.jsonl and dev.jsonl from a corpus copy, and dev's two
    speaker-disjoint parts dev_report.jsonl (REPORT_SPEAKERS) and dev_rest.jsonl when
    both are non-empty. Returns {name: utterances}."""
    corpus_dir, manifest_dir = Path(corpus_dir), Path(manifest_dir)
    held_out = dev_dir(corpus_dir)  # first: a copy without one fails before any reading
    prepared = {"train": import_kaldi_dir(corpus_dir / "train", jobs=jobs),
                "dev": import_kaldi_dir(held_out, jobs=jobs)}
    report = [u for u in prepared["dev"] if u.speaker in REPORT_SPEAKERS]
    rest = [u for u in prepared["dev"] if u.speaker not in REPORT_SPEAKERS]
    if report and rest:
        prepared.update(dev_report=report, dev_rest=rest)
    for name, utterances in prepared.items():
        write_manifest(utterances, manifest_dir / f"{name}.jsonl")
    return prepared
