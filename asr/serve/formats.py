"""The five `response_format`s of POST /v1/audio/transcriptions, in the shapes OpenAI's API uses.

    body, media_type = render(hyp, "verbose_json", duration=3.2, tokenizer=loaded.tokenizer)

    json          {"text"}
    text          the text and a newline
    srt, vtt      subtitles (asr.subtitles: cues of at most 5 s / 12 words)
    verbose_json  {"task", "language", "duration", "text", "segments", "words"}

verbose_json's segments are the subtitle cues, so a client can rebuild the SRT and
VTT files from it (the web page does). Fields that Whisper's segments carry and
our decoder has no counterpart for get the value that is true of ours: `temperature`
0 (decoding is deterministic), `no_speech_prob` 0 (a segment is made only of
recognized words), `seek` the segment's start in 10 ms frames. `avg_logprob` is the
mean log confidence of its words, `compression_ratio` is Whisper's (text bytes /
zlib-compressed bytes), and `tokens` are our character ids. Every word carries
`confidence` (0..1, see asr.decode.add_word_timings) besides OpenAI's word/start/end.
"""

from __future__ import annotations

import math
import zlib

from asr.decode import Hypothesis
from asr.subtitles import split_cues, to_srt, to_vtt
from asr.text import CharTokenizer

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
LANGUAGE = "english"  # every model of the toolkit reads English (a-z, apostrophe)
_MEDIA_TYPES = {"json": "application/json", "verbose_json": "application/json",
                "text": "text/plain; charset=utf-8", "srt": "text/plain; charset=utf-8",
                "vtt": "text/vtt; charset=utf-8"}


def render(hyp: Hypothesis, fmt: str, duration: float, tokenizer: CharTokenizer) -> tuple[dict | str, str]:
    """(body, media type) of the transcript `hyp` of `duration` seconds of audio; dict bodies are JSON."""
    if fmt == "json":
        return {"text": hyp.text}, _MEDIA_TYPES[fmt]
    if fmt == "text":
        return hyp.text + "\n", _MEDIA_TYPES[fmt]
    cues = split_cues(hyp.words)
    if fmt == "srt":
        return to_srt(cues), _MEDIA_TYPES[fmt]
    if fmt == "vtt":
        return to_vtt(cues), _MEDIA_TYPES[fmt]
    if fmt != "verbose_json":
        raise ValueError(f"unknown response format {fmt!r}")
    segments = []
    for i, cue in enumerate(cues):
        text = " ".join(w.text for w in cue)
        segments.append({
            "id": i, "seek": round(cue[0].start * 100), "start": round(cue[0].start, 3),
            "end": round(cue[-1].end, 3), "text": text, "tokens": tokenizer.encode(text), "temperature": 0.0,
            "avg_logprob": round(sum(math.log(max(w.confidence, 1e-6)) for w in cue) / len(cue), 4),
            "compression_ratio": round(len(text.encode()) / len(zlib.compress(text.encode())), 4),
            "no_speech_prob": 0.0,
        })
    words = [{"word": w.text, "start": round(w.start, 3), "end": round(w.end, 3),
              "confidence": round(w.confidence, 4)} for w in hyp.words]
    body = {"task": "transcribe", "language": LANGUAGE, "duration": round(duration, 3), "text": hyp.text,
            "segments": segments, "words": words}
    return body, _MEDIA_TYPES[fmt]
