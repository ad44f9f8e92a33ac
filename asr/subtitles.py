"""Transcripts with word times as SRT, WebVTT or JSON lines.

    cues = split_cues(hyp.words, max_seconds=5.0, max_words=12)
    print(to_srt(cues))                  # or to_vtt(cues)
    print(to_jsonl("a.wav", hyp))        # {"file", "text", "words": [{word, start, end, confidence}]}
    render("a.wav", hyp, "srt")          # any of FORMATS, as `asr transcribe --format` prints it

`hyp.words` comes from `asr.decode.add_word_timings` (or a decoder made with
`frame_seconds`). A cue is a run of consecutive words; a new cue starts when
the current one would last longer than `max_seconds` or hold more than
`max_words` words.
"""

from __future__ import annotations

import json
from pathlib import Path

from asr.decode import Hypothesis, Word

FORMATS = ("jsonl", "srt", "vtt")
MAX_CUE_SECONDS = 5.0
MAX_CUE_WORDS = 12


def split_cues(words: list[Word], max_seconds: float = MAX_CUE_SECONDS,
               max_words: int = MAX_CUE_WORDS) -> list[list[Word]]:
    """Group consecutive words into cues no longer than max_seconds / max_words
    (a single word longer than max_seconds gets a cue of its own)."""
    cues: list[list[Word]] = []
    for word in words:
        if cues and len(cues[-1]) < max_words and word.end - cues[-1][0].start <= max_seconds:
            cues[-1].append(word)
        else:
            cues.append([word])
    return cues


def timestamp(seconds: float, decimal: str) -> str:
    """HH:MM:SS,mmm (SRT, decimal=",") or HH:MM:SS.mmm (WebVTT, decimal=".")."""
    millis = round(max(seconds, 0.0) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def to_srt(cues: list[list[Word]]) -> str:
    blocks = [f"{i}\n{timestamp(cue[0].start, ',')} --> {timestamp(cue[-1].end, ',')}\n"
              f"{' '.join(w.text for w in cue)}\n" for i, cue in enumerate(cues, 1)]
    return "\n".join(blocks)


def to_vtt(cues: list[list[Word]]) -> str:
    blocks = [f"{timestamp(cue[0].start, '.')} --> {timestamp(cue[-1].end, '.')}\n"
              f"{' '.join(w.text for w in cue)}\n" for cue in cues]
    return "\n".join(["WEBVTT\n", *blocks])


def to_jsonl(path: str | Path, hyp: Hypothesis) -> str:
    """One JSON line: file, text and the timed words (seconds, 3 decimals; confidence 0..1)."""
    words = [{"word": w.text, "start": round(w.start, 3), "end": round(w.end, 3),
              "confidence": round(w.confidence, 4)} for w in hyp.words]
    return json.dumps({"file": str(path), "text": hyp.text, "words": words})


def render(path: str | Path, hyp: Hypothesis, fmt: str) -> str:
    """The transcript of the file at `path` in one of FORMATS."""
    if fmt == "jsonl":
        return to_jsonl(path, hyp)
    if fmt not in FORMATS:
        raise ValueError(f"unknown transcript format {fmt!r} (choose from: txt, {', '.join(FORMATS)})")
    cues = split_cues(hyp.words)
    return to_srt(cues) if fmt == "srt" else to_vtt(cues)
