"""JSONL manifests: one utterance per line.

Each line is an object with
    id          utterance id, unique within the manifest
    audio_path  path to the audio file (absolute, or relative to the manifest's folder)
    duration    seconds of audio used
    text        transcript (as given by the corpus; normalized when tokenized)
    speaker     speaker id
    offset      optional start time in seconds within audio_path (default 0)

Manifests are written atomically, so an interrupted `prepare` never leaves a
half-written file behind.

Training can read a mix of manifests, some repeated to weight them (`read_mix`):
    "data/train.jsonl*2, data/synth.jsonl"   -> every train utterance twice, synth once
Repeated copies get the ids "ID~2", "ID~3", ... so that ids stay unique (and, in the
training dataset, each copy draws its own augmentation).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from asr.atomic import atomic_write
from asr.errors import AsrError


class ManifestError(AsrError):
    """A manifest that cannot be read. The message names the file and line."""


@dataclass(frozen=True)
class Utterance:
    id: str
    audio_path: str
    duration: float
    text: str
    speaker: str
    offset: float = 0.0


_REQUIRED = ("id", "audio_path", "duration", "text", "speaker")


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read a JSONL manifest. Relative audio paths resolve against the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    root = path.parent
    utterances, first_line = [], {}
    for line_no, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{path}:{line_no}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise ManifestError(f"{path}:{line_no}: expected a JSON object")
        missing = [k for k in _REQUIRED if k not in row]
        if missing:
            raise ManifestError(f"{path}:{line_no}: missing field(s) {', '.join(missing)}")
        try:
            duration, offset = float(row["duration"]), float(row.get("offset", 0.0))
        except (TypeError, ValueError):
            raise ManifestError(f"{path}:{line_no}: duration/offset must be numbers") from None
        if not (0 < duration < math.inf and 0 <= offset < math.inf):  # NaN fails both
            raise ManifestError(f"{path}:{line_no}: duration must be > 0 and offset >= 0 (finite numbers), got "
                                f"{row['duration']!r} and {row.get('offset', 0.0)!r}")
        utt_id = str(row["id"])
        if utt_id in first_line:
            raise ManifestError(f"{path}:{line_no}: duplicate utterance id {utt_id!r} (first on line "
                                f"{first_line[utt_id]})")
        first_line[utt_id] = line_no
        audio = Path(str(row["audio_path"]))
        utterances.append(
            Utterance(
                id=utt_id,
                audio_path=str(audio if audio.is_absolute() else root / audio),
                duration=duration,
                text=str(row["text"]),
                speaker=str(row["speaker"]),
                offset=offset,
            )
        )
    if not utterances:
        raise ManifestError(f"{path}: manifest is empty")
    return utterances


def _lines(path: Path) -> list[str]:
    """The manifest's lines; ManifestError, naming the line, if it is not UTF-8 text."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ManifestError(f"{path}: cannot read the manifest ({err.strerror})") from None
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        line_no = data[: err.start].count(b"\n") + 1
        raise ManifestError(f"{path}:{line_no}: not UTF-8 text (byte {data[err.start]:#04x}); "
                            "manifests are UTF-8 JSON lines") from None


def read_mix(spec: str) -> list[Utterance]:
    """Read "PATH[*REPEATS], PATH[*REPEATS], ..." (one plain path is the common case).
    Raises ManifestError for a bad repeat count or an utterance id found in two manifests."""
    utterances, source = [], {}
    for item in (part.strip() for part in spec.split(",")):
        path, _, count = item.partition("*")
        try:
            repeats = int(count) if count else 1
        except ValueError:
            repeats = 0
        if repeats < 1:
            raise ManifestError(f"{item!r}: expected PATH or PATH*N with a whole N >= 1 (in {spec!r})")
        for utt in read_manifest(path.strip()):
            if utt.id in source:
                raise ManifestError(f"utterance id {utt.id!r} is in both {source[utt.id]} and {path.strip()}")
            source[utt.id] = path.strip()
            utterances.append(utt)
            utterances.extend(replace(utt, id=f"{utt.id}~{copy}") for copy in range(2, repeats + 1))
    return utterances


def write_manifest(utterances: list[Utterance], path: str | os.PathLike) -> None:
    """Write utterances as JSONL atomically (never half-written)."""
    with atomic_write(path) as f:
        for utt in utterances:
            row = asdict(utt)
            if not row["offset"]:
                del row["offset"]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
