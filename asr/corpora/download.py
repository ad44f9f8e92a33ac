"""Fetch and unpack corpus archives: resumable download, MD5 or SHA-256 check, safe extraction.

    download_and_extract(url, md5, dest)    all three, skipping whatever is already done
    download_file(url, path, sha256=...)    one file, resumed and verified (no extraction)

What each step leaves behind (NAME is the archive's file name from the URL):
    ARCHIVE_DIR/NAME.part   a download in progress; the next call resumes it with an
                            HTTP Range request instead of starting again
    ARCHIVE_DIR/NAME        the whole archive, renamed from .part only once its MD5 matched
    DEST/.NAME.done         written when extraction has finished; it holds the MD5, so a
                            rerun skips the download and the extraction (the archive may
                            then be deleted to save space)

Extraction refuses members that would land outside DEST (absolute paths, `..`, links
pointing out, device files). Every failure (no connection, HTTP error, a connection
that dropped, a wrong checksum, a truncated or corrupt archive, an unsafe member)
raises `DownloadError`, whose message names the URL or file. Corpus recipes (e.g.
asr.corpora.librispeech) hold their own tables of URLs and published checksums.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path

from tqdm import tqdm

from asr.atomic import atomic_write
from asr.errors import AsrError

CHUNK_BYTES = 1 << 20  # 1 MiB per read while downloading and hashing
TIMEOUT_SECONDS = 60.0  # per connection attempt and per read


class DownloadError(AsrError):
    """A download or extraction that failed. The message names the URL or file."""


def archive_name(url: str) -> str:
    """File name of the archive at `url` (the last path component)."""
    name = Path(urllib.parse.urlparse(url).path).name
    if not name:
        raise DownloadError(f"{url}: URL does not end in a file name")
    return name


def done_marker(dest: str | os.PathLike, url: str) -> Path:
    """The file whose presence says the archive at `url` was fully extracted into `dest`."""
    return Path(dest) / f".{archive_name(url)}.done"


def download_and_extract(url: str, md5: str | None, dest: str | os.PathLike,
                         archive_dir: str | os.PathLike | None = None) -> Path:
    """Download `url` into `archive_dir` (default `dest`), check its MD5, extract it into `dest`.

    Returns `dest`. Work already done is skipped: a finished extraction of the same
    archive (same MD5) does nothing, a complete verified archive is not downloaded
    again, and a partial download is resumed.
    """
    dest = Path(dest)
    marker = done_marker(dest, url)
    if marker.is_file() and marker.read_text().strip() == (md5 or ""):
        print(f"{archive_name(url)}: already extracted in {dest}, skipping", file=sys.stderr)
        return dest
    archive = download_file(url, Path(archive_dir or dest) / archive_name(url), md5)
    extract(archive, dest)
    with atomic_write(marker) as f:
        f.write((md5 or "") + "\n")
    return dest


def download_file(url: str, path: str | os.PathLike, md5: str | None = None, *, sha256: str | None = None,
                  progress: bool = True) -> Path:
    """Download `url` to `path`, resuming `path`.part if an earlier attempt was cut off.

    `path` appears only once the whole file is there and, when `md5` or `sha256` is given,
    matches it. An existing `path` is kept (after checking it, if a checksum is given).
    `progress=False` hides the per-file bars (for callers fetching many small files).
    """
    path = Path(path)
    algorithm, expected = ("sha256", sha256) if sha256 else ("md5", md5)
    if path.is_file():
        actual = file_digest(path, algorithm, progress) if expected else None
        if actual != expected:
            raise DownloadError(f"{path}: {algorithm.upper()} is {actual}, expected {expected}; "
                                "delete the file to download it again")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    _fetch(url, part, progress)
    actual = file_digest(part, algorithm, progress) if expected else None
    if actual != expected:
        part.unlink()  # resuming cannot repair it: start afresh next time
        raise DownloadError(f"{url}: checksum mismatch ({algorithm.upper()} {actual}, expected {expected}); "
                            "the download was deleted, run again to fetch it afresh")
    os.replace(part, path)
    return path


def file_digest(path: str | os.PathLike, algorithm: str = "md5", progress: bool = True) -> str:
    """Hex digest ("md5" or "sha256") of a file, read in chunks (with a progress bar: archives can be 30 GB)."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f, _bar(os.path.getsize(path), f"verify {Path(path).name}", show=progress) as bar:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def extract(archive: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Unpack a .zip or a (compressed) tar archive into `dest`, refusing unsafe members."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if archive.name.endswith(".zip"):
            _extract_zip(archive, dest)
        else:
            _extract_tar(archive, dest)
    except tarfile.FilterError as err:
        raise DownloadError(f"{archive}: refusing unsafe archive member ({err})") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DownloadError(f"{archive}: archive is truncated or corrupt ({str(err) or type(err).__name__}); "
                            "delete it to download it again") from None


def _fetch(url: str, part: Path, progress: bool = True) -> None:
    """Append the rest of `url` to `part` (all of it if the server ignores Range)."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left to send: the .part is already whole
            return
        raise DownloadError(f"{url}: HTTP error {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"{url}: cannot connect ({getattr(err, 'reason', err)})") from None
    with response:
        if getattr(response, "status", None) != 206:
            offset = 0  # the server sent the whole file
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length else None
        bar = _bar(total, f"download {part.name[:-5]}", offset, show=progress)
        with open(part, "ab" if offset else "wb") as f, bar:
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (http.client.HTTPException, OSError):
                    break  # a dropped connection: the size check below reports it
                if not chunk:
                    break
                f.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size < total:
        raise DownloadError(f"{url}: connection closed after {size} of {total} bytes; run again to resume")


def _extract_tar(archive: Path, dest: Path) -> None:
    # Stream mode reads the archive once, front to back. The filter refuses absolute
    # paths (the "data" filter alone would strip the "/"), `..`, links out of `dest`
    # and device files.
    with open(archive, "rb") as raw, tqdm.wrapattr(raw, "read", total=archive.stat().st_size, unit_scale=True,
                                                  desc=f"extract {archive.name}", disable=None, file=sys.stderr) as f:
        with tarfile.open(fileobj=f, mode="r|*") as tar:
            tar.extractall(dest, filter=_refuse_unsafe)


def _refuse_unsafe(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    if os.path.isabs(member.name):
        raise tarfile.AbsolutePathError(member)
    return tarfile.data_filter(member, dest)


def _extract_zip(archive: Path, dest: Path) -> None:
    root = dest.resolve()
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in members:  # check all first: zipfile would silently rewrite bad names
            if not (root / info.filename).resolve().is_relative_to(root):
                raise DownloadError(f"{archive}: refusing unsafe archive member {info.filename!r} "
                                    f"(it would be extracted outside {dest})")
        for info in tqdm(members, desc=f"extract {archive.name}", unit="file", disable=None, file=sys.stderr):
            zf.extract(info, dest)


def _bar(total: int | None, desc: str, initial: int = 0, show: bool = True) -> tqdm:
    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=None if show else True, file=sys.stderr)
