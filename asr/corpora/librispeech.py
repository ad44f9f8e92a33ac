"""LibriSpeech: download subsets from OpenSLR (or a mirror) and write a manifest for each.

    download_librispeech(["dev-clean"], "downloads")
        -> {"dev-clean": Path("downloads/LibriSpeech/dev-clean")}
    prepare_librispeech(["dev-clean"], "downloads", "data")
        -> {"dev-clean": [Utterance, ...]}, and data/dev-clean.jsonl

The CLI wrapper is `asr prepare librispeech --subsets ... --root ...`.

Archives are checked against the MD5s OpenSLR publishes (resources/12/md5sum.txt and
resources/31/md5sum.txt, copied into SUBSETS). A mirror serves the same files under
MIRROR/<resource>/<subset>.tar.gz; a private mirror with other archives (such as the
generated one the tests use) passes its own table as `checksums` (see `read_md5sums`).

Scale: all of LibriSpeech is 960 h in about 281k utterances. Only audio headers are
read while preparing (in a process pool over all cores), never the samples, and a
manifest is written (atomically) only after its whole subset was scanned.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from asr.corpora.download import DownloadError, done_marker, download_and_extract
from asr.corpora.importers import import_librispeech
from asr.data.manifest import ManifestError, Utterance, read_manifest, write_manifest

OPENSLR = "https://www.openslr.org/resources"

# subset -> (OpenSLR resource, published MD5 of <subset>.tar.gz)
SUBSETS: dict[str, tuple[int, str]] = {
    "dev-clean": (12, "42e2234ba48799c1f50f24a7926300a1"),  # 5.4 h, 2703 utterances
    "dev-other": (12, "c8d0bcc9cca99d4f8b62fcc847357931"),  # 5.3 h, 2864
    "test-clean": (12, "32fa31d27d2e1cad72775fee3f4849a9"),  # 5.4 h, 2620
    "test-other": (12, "fb5a50374b501bb3bac4815ee91d3135"),  # 5.1 h, 2939
    "train-clean-100": (12, "2a93770f6d5c6c964bc36631d331a522"),  # 100.6 h, 28539
    "train-clean-360": (12, "c0e676e450a7ff2f54aeade5171606fa"),  # 363.6 h, 104014
    "train-other-500": (12, "d1a0fd59409feb2c614ce4d30c387708"),  # 496.7 h, 148688
    "dev-clean-2": (31, "6d7ab67ac6a1d2c993d050e16d61080d"),  # Mini LibriSpeech, 1089 utterances
    "train-clean-5": (31, "5df7d4e78065366204ca6845bb08f490"),  # Mini LibriSpeech, 1519 utterances
}


def subset_url(subset: str, mirror: str | None = None) -> str:
    resource, _ = SUBSETS[_known(subset)]
    return f"{(mirror or OPENSLR).rstrip('/')}/{resource}/{subset}.tar.gz"


def read_md5sums(path: str | os.PathLike) -> dict[str, str]:
    """Read an md5sum-style file (`<md5>  <subset>.tar.gz` lines, as OpenSLR's md5sum.txt)
    into {subset: md5}."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DownloadError(f"{path}: cannot read checksums ({err.strerror})") from None
    except UnicodeDecodeError:
        raise DownloadError(f"{path}: checksums file is not UTF-8 text") from None
    table = {}
    for line_no, line in enumerate(lines, 1):
        if line.strip():
            fields = line.split()
            if len(fields) != 2 or len(fields[0]) != 32:
                raise DownloadError(f"{path}:{line_no}: expected '<md5>  <name>.tar.gz'")
            table[Path(fields[1].lstrip("*")).name.removesuffix(".tar.gz")] = fields[0].lower()
    return table


def download_librispeech(subsets: list[str], root: str | os.PathLike, mirror: str | None = None,
                         checksums: dict[str, str] | None = None) -> dict[str, Path]:
    """Download and extract `subsets` into ROOT/LibriSpeech/<subset> (archives stay in ROOT).

    `checksums` ({subset: md5}) replaces the published MD5s, for mirrors serving other
    archives. Returns {subset: extracted folder}.
    """
    root = Path(root)
    folders = {}
    for subset in subsets:
        md5 = (checksums or {}).get(subset) or SUBSETS[_known(subset)][1]
        download_and_extract(subset_url(subset, mirror), md5, root)
        folders[subset] = root / "LibriSpeech" / subset
        if not folders[subset].is_dir():
            raise DownloadError(f"{subset_url(subset, mirror)}: archive has no LibriSpeech/{subset} folder")
    return folders


def prepare_librispeech(subsets: list[str], root: str | os.PathLike, manifest_dir: str | os.PathLike,
                        jobs: int | None = None) -> dict[str, list[Utterance]]:
    """Write MANIFEST_DIR/<subset>.jsonl for each subset that `download_librispeech` extracted.

    A manifest newer than its subset's extraction is kept as it is. Returns {subset: utterances}.
    """
    root, manifest_dir = Path(root), Path(manifest_dir)
    prepared = {}
    for subset in subsets:
        folder = root / "LibriSpeech" / _known(subset)
        marker = done_marker(root, subset_url(subset))
        if not marker.is_file():  # a partial extraction must not become a manifest
            raise ManifestError(f"{folder}: not downloaded and extracted completely (run download_librispeech; "
                                "for a copy extracted by hand use `asr prepare librispeech-dir`)")
        manifest = manifest_dir / f"{subset}.jsonl"
        if manifest.is_file() and manifest.stat().st_mtime >= marker.stat().st_mtime:
            print(f"{manifest}: already prepared, skipping", file=sys.stderr)
            prepared[subset] = read_manifest(manifest)
            continue
        prepared[subset] = import_librispeech(folder, jobs=jobs)
        write_manifest(prepared[subset], manifest)
    return prepared


def _known(subset: str) -> str:
    if subset not in SUBSETS:
        raise ManifestError(f"unknown LibriSpeech subset {subset!r} (choose from {', '.join(SUBSETS)})")
    return subset
