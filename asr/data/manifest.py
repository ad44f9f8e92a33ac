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
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
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
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
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
            if duration <= 0 or offset < 0:
                raise ManifestError(f"{path}:{line_no}: duration must be > 0 and offset >= 0")
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


def write_manifest(utterances: list[Utterance], path: str | os.PathLike) -> None:
    """Write utterances as JSONL atomically (never half-written)."""
    with atomic_write(path) as f:
        for utt in utterances:
            row = asdict(utt)
            if not row["offset"]:
                del row["offset"]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
