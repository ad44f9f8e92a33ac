"""Every way a transcript is written out, in one place (whisper's `get_writer` idea):
`asr transcribe --format`, its --output / --output-dir files, and `asr serve`'s response_format.

    line = transcript_line("a.wav", hyp, "jsonl")    # stdout or --output: one file's line (srt/vtt: its blocks)
    text = transcript_file("a.wav", hyp, "srt")      # a file of its own in --output-dir
    body, media_type = response(hyp, "verbose_json", duration=3.2, tokenizer=tokenizer)  # HTTP; dict = JSON

FORMATS, the one table of them:
    txt           CLI    the text (stdout and --output: `path<TAB>text`, one line per file)
    jsonl         CLI    {"file", "text", "words": [{word, start, end, confidence}]}, one line per file
    json          API    {"text"}
    text          API    the text and a newline
    srt, vtt      both   subtitles: cues of at most MAX_CUE_SECONDS / MAX_CUE_WORDS words
    verbose_json  API    {"task", "language", "duration", "text", "segments", "words"}

Where the results of several inputs go is decided once, by `check_outputs`: stdout takes one
format (srt/vtt for one input only, their blocks cannot be told apart), --output FILE a
one-line format, --output-dir DIR any number of formats.

verbose_json's segments are the subtitle cues, so a client can rebuild the SRT and VTT files
from it (the web page does). Fields that Whisper's segments carry and our decoder has no
counterpart for get the value that is true of ours: `temperature` 0 (decoding is
deterministic), `no_speech_prob` 0 (a segment is made only of recognized words), `seek` the
segment's start in 10 ms frames. `avg_logprob` is the mean log confidence of its words,
`compression_ratio` is Whisper's (text bytes / zlib-compressed bytes), and `tokens` are our
character ids. Every word carries `confidence` (0..1, asr.decode.add_word_timings) besides
OpenAI's word/start/end. Word times come from `asr.decode.add_word_timings`; this module needs
no torch.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from asr.config import ConfigError
from asr.errors import AsrError

if TYPE_CHECKING:
    from asr.decode import Hypothesis, Word
    from asr.text import CharTokenizer

MAX_CUE_SECONDS = 5.0
MAX_CUE_WORDS = 12
LANGUAGE = "english"  # every model of the toolkit reads English (a-z, apostrophe)


@dataclass(frozen=True)
class Format:
    name: str
    media_type: str
    cli: bool  # an `asr transcribe --format`
    api: bool  # an `asr serve` response_format
    one_line: bool = False  # one line per file: can be appended to --output FILE


_TEXT = "text/plain; charset=utf-8"
FORMATS = {f.name: f for f in (
    Format("txt", _TEXT, cli=True, api=False, one_line=True),
    Format("jsonl", "application/x-ndjson", cli=True, api=False, one_line=True),
    Format("json", "application/json", cli=False, api=True),
    Format("text", _TEXT, cli=False, api=True),
    Format("srt", _TEXT, cli=True, api=True),
    Format("vtt", "text/vtt; charset=utf-8", cli=True, api=True),
    Format("verbose_json", "application/json", cli=False, api=True),
)}
CLI_FORMATS = tuple(name for name, f in FORMATS.items() if f.cli)  # txt, jsonl, srt, vtt
API_FORMATS = tuple(name for name, f in FORMATS.items() if f.api)  # json, text, srt, vtt, verbose_json
LINE_FORMATS = tuple(name for name, f in FORMATS.items() if f.one_line)  # txt, jsonl


class OutputError(AsrError):
    """An output file that cannot be written or resumed, or outputs that do not fit the inputs."""


def parse_formats(text: str) -> tuple[str, ...]:
    """`asr transcribe --format`: "txt", "srt,vtt" or "all" -> the formats, in the order given."""
    formats = CLI_FORMATS if text == "all" else tuple(dict.fromkeys(text.split(",")))
    unknown = [f for f in formats if f not in CLI_FORMATS]
    if unknown:
        raise ConfigError(f"unknown --format {unknown[0]!r} (choose from: {', '.join(CLI_FORMATS)}, or all)")
    return formats


def check_outputs(formats: tuple[str, ...], inputs: int, output=None, output_dir=None, resume: bool = False) -> None:
    """OutputError unless `inputs` transcripts in `formats` fit where they go: stdout (neither
    `output` nor `output_dir`), an `output` file one line per input, or files in `output_dir`."""
    if output and output_dir:
        raise OutputError("--output and --output-dir exclude each other")
    if resume and not (output or output_dir):
        raise OutputError("--resume needs --output FILE or --output-dir DIR (what to continue)")
    if output_dir:
        return
    if len(formats) > 1:
        raise OutputError(f"{len(formats)} formats need --output-dir DIR (a file per input and format)")
    if output and formats[0] not in LINE_FORMATS:
        raise OutputError(f"--output appends a line per file: use --format {' or '.join(LINE_FORMATS)}, "
                          f"or --output-dir DIR for a {formats[0]} file per input")
    if not output and formats[0] in ("srt", "vtt") and inputs > 1:
        raise OutputError(f"{formats[0]} on stdout takes one input, got {inputs} files; "
                          f"use --output-dir DIR for a {formats[0]} file per input")


def word_dict(word: Word) -> dict:
    """A timed word as JSON holds it: seconds to 3 decimals, confidence (0..1) to 4."""
    return {"word": word.text, "start": round(word.start, 3), "end": round(word.end, 3),
            "confidence": round(word.confidence, 4)}


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
    """One JSON line: file, text and the timed words."""
    return json.dumps({"file": str(path), "text": hyp.text, "words": [word_dict(w) for w in hyp.words]})


def transcript_line(path: str | Path, hyp: Hypothesis, fmt: str) -> str:
    """One file's transcript as printed on stdout or appended to --output (txt: `path<TAB>text`)."""
    if fmt == "txt":
        return f"{path}\t{hyp.text}"
    if fmt == "jsonl":
        return to_jsonl(path, hyp)
    return _subtitles(hyp, fmt)


def transcript_file(path: str | Path, hyp: Hypothesis, fmt: str) -> str:
    """One file's transcript as a file of its own in --output-dir (txt: the text alone)."""
    text = hyp.text if fmt == "txt" else transcript_line(path, hyp, fmt)
    return text.rstrip("\n") + "\n"


def response(hyp: Hypothesis, fmt: str, duration: float, tokenizer: CharTokenizer) -> tuple[dict | str, str]:
    """(body, media type) of the transcript `hyp` of `duration` seconds of audio, as the server's
    `response_format` `fmt`; dict bodies are JSON."""
    media_type = FORMATS[fmt].media_type
    if fmt == "json":
        return {"text": hyp.text}, media_type
    if fmt == "text":
        return hyp.text + "\n", media_type
    if fmt != "verbose_json":
        return _subtitles(hyp, fmt), media_type
    segments = [_segment(i, cue, tokenizer) for i, cue in enumerate(split_cues(hyp.words))]
    body = {"task": "transcribe", "language": LANGUAGE, "duration": round(duration, 3), "text": hyp.text,
            "segments": segments, "words": [word_dict(w) for w in hyp.words]}
    return body, media_type


def _subtitles(hyp: Hypothesis, fmt: str) -> str:
    if fmt not in ("srt", "vtt"):
        raise ValueError(f"unknown transcript format {fmt!r} (choose from: {', '.join(FORMATS)})")
    cues = split_cues(hyp.words)
    return to_srt(cues) if fmt == "srt" else to_vtt(cues)


def _segment(index: int, cue: list[Word], tokenizer: CharTokenizer) -> dict:
    """One cue as a verbose_json segment, in the shape of Whisper's."""
    text = " ".join(w.text for w in cue)
    return {
        "id": index, "seek": round(cue[0].start * 100), "start": round(cue[0].start, 3),
        "end": round(cue[-1].end, 3), "text": text, "tokens": tokenizer.encode(text), "temperature": 0.0,
        "avg_logprob": round(sum(math.log(max(w.confidence, 1e-6)) for w in cue) / len(cue), 4),
        "compression_ratio": round(len(text.encode()) / len(zlib.compress(text.encode())), 4),
        "no_speech_prob": 0.0,
    }
