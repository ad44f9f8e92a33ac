"""Turn corpora on disk into manifests.

Three layouts are understood:
  * Kaldi data dirs: `wav.scp` + `text` + `utt2spk` (optionally `segments`);
  * the LibriSpeech tree: `<spk>/<chapter>/<spk>-<chapter>-<utt>.flac` + `<spk>-<chapter>.trans.txt`;
  * a plain folder: `name.wav` (or .flac/.ogg/.opus/.mp3) with `name.txt` beside it.

Each importer returns a list of `Utterance`. Durations are read from the audio
headers in a process pool (all cores by default) with a progress bar. Files that
cannot be read are reported on stderr, one line each, and left out.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from asr.audio import AUDIO_EXTENSIONS, AudioError, audio_info
from asr.data.manifest import ManifestError, Utterance


def import_kaldi_dir(data_dir: str | os.PathLike, jobs: int | None = None) -> list[Utterance]:
    """Read a Kaldi data dir. Relative paths in wav.scp resolve against the data dir,
    then its parent (corpora such as speechocean762 put them relative to the corpus root)."""
    data_dir = Path(data_dir)
    for name in ("wav.scp", "text"):
        if not (data_dir / name).is_file():
            raise ManifestError(f"{data_dir}: not a Kaldi data dir (no {name})")
    recordings = _read_table(data_dir / "wav.scp")
    texts = _read_table(data_dir / "text")
    speakers = _read_table(data_dir / "utt2spk") if (data_dir / "utt2spk").is_file() else {}
    for reco, path in recordings.items():
        if path.endswith("|"):
            raise ManifestError(f"{data_dir / 'wav.scp'}: {reco}: piped commands are not supported")
    root = _audio_root(data_dir, recordings.values())

    if (data_dir / "segments").is_file():
        spans = _read_segments(data_dir / "segments", recordings)
    else:
        spans = {utt: (utt, 0.0, None) for utt in recordings}

    missing_text = [utt for utt in spans if utt not in texts]
    if missing_text:
        print(f"warning: {len(missing_text)} utterance(s) without text, e.g. {missing_text[0]}", file=sys.stderr)
    items = []
    for utt, (reco, offset, duration) in spans.items():
        if utt in texts:
            path = root / recordings[reco]
            items.append((utt, str(path), texts[utt], speakers.get(utt, utt), offset, duration))
    return _with_durations(items, jobs)


def import_librispeech(root: str | os.PathLike, jobs: int | None = None) -> list[Utterance]:
    """Read a LibriSpeech subset folder (e.g. `LibriSpeech/dev-clean`)."""
    root = Path(root)
    transcripts = sorted(root.glob("*/*/*.trans.txt"))
    if not transcripts:
        raise ManifestError(f"{root}: no <speaker>/<chapter>/*.trans.txt files (not a LibriSpeech subset?)")
    items = []
    for trans in transcripts:
        for utt, text in _read_table(trans).items():
            speaker = utt.split("-")[0]
            items.append((utt, str(trans.parent / f"{utt}.flac"), text, speaker, 0.0, None))
    return _with_durations(items, jobs)


def import_folder(root: str | os.PathLike, jobs: int | None = None) -> list[Utterance]:
    """Read every audio file under `root` that has a same-named `.txt` transcript."""
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root}: not a folder")
    items, sources = [], {}
    for audio in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS):
        transcript = audio.with_suffix(".txt")
        if transcript.is_file():
            text = _read_text(transcript).strip()
            utt = str(audio.relative_to(root).with_suffix("")).replace(os.sep, "-")
            if utt in sources:
                raise ManifestError(f"{audio}: same utterance id {utt!r} as {sources[utt]}; rename one of them")
            sources[utt] = audio
            items.append((utt, str(audio), text, audio.parent.name, 0.0, None))
    if not items:
        raise ManifestError(f"{root}: no audio files with .txt transcripts next to them")
    return _with_durations(items, jobs)


def _read_text(path: Path) -> str:
    """A transcript or table file's text; ManifestError, naming the line, if it is not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line_no = data[: err.start].count(b"\n") + 1
        raise ManifestError(f"{path}:{line_no}: not UTF-8 text (byte {data[err.start]:#04x})") from None


def _read_table(path: Path) -> dict[str, str]:
    """Kaldi-style `key<whitespace>value` lines."""
    return {key: value for _, key, value in _table_lines(path)}


def _table_lines(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line number, key, value) of each non-blank `key<whitespace>value` line."""
    for line_no, line in enumerate(_read_text(path).split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        key, _, value = line.partition(" ") if "\t" not in line else line.partition("\t")
        if not value.strip():
            raise ManifestError(f"{path}:{line_no}: expected '<id> <value>'")
        yield line_no, key, value.strip()


def _read_segments(path: Path, recordings: dict[str, str]) -> dict[str, tuple[str, float, float | None]]:
    """`<utt> <recording> <start> <end>` lines (seconds; end -1: to the end of the recording)
    -> {utt: (recording, offset, duration or None)}."""
    spans = {}
    for line_no, utt, fields in _table_lines(path):
        try:
            reco, start, end = fields.split()
            start, end = float(start), float(end)
        except ValueError:
            raise ManifestError(f"{path}:{line_no}: expected '<utt> <recording> <start> <end>'") from None
        if start < 0 or (end <= start and end != -1):
            raise ManifestError(f"{path}:{line_no}: needs 0 <= start < end (or end -1), got {start:g} {end:g}")
        if reco not in recordings:
            raise ManifestError(f"{path}:{line_no}: recording {reco!r} is not in wav.scp")
        spans[utt] = (reco, start, None if end == -1 else end - start)
    return spans


def _audio_root(data_dir: Path, paths) -> Path:
    first = next(iter(paths), None)
    if first is None or Path(first).is_absolute():
        return Path("/")
    for candidate in (data_dir, data_dir.parent, Path.cwd()):
        if (candidate / first).exists():
            return candidate.resolve()
    raise ManifestError(f"{data_dir / 'wav.scp'}: audio file {first} not found relative to {data_dir} or its parent")


def _probe(item):
    utt, path, text, speaker, offset, duration = item
    try:
        total, _, _ = audio_info(path)
    except AudioError as err:
        return None, str(err)
    if offset >= total:
        return None, f"{path}: {utt} starts at {offset:g} s, past the end of the audio ({total:g} s)"
    if duration is None:
        duration = total - offset
    return Utterance(utt, str(Path(path).resolve()), round(duration, 4), text, speaker, offset), None


def _with_durations(items: list[tuple], jobs: int | None) -> list[Utterance]:
    jobs = jobs or os.cpu_count() or 1
    utterances, failures = [], []
    progress = dict(total=len(items), desc="scan audio", unit="file", disable=None, file=sys.stderr)
    if jobs > 1 and len(items) > 64:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(tqdm(pool.map(_probe, items, chunksize=32), **progress))
    else:
        results = [_probe(item) for item in tqdm(items, **progress)]
    for utt, error in results:
        if error:
            failures.append(error)
        else:
            utterances.append(utt)
    for error in failures:
        print(f"warning: skipped {error}", file=sys.stderr)
    if not utterances:
        raise ManifestError("no usable audio found")
    return utterances
