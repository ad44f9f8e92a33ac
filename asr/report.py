"""The evaluation report: one self-contained HTML page, `asr evaluate ... --report report.html`.

    summary, rows = score(utterances, hyps)                          # asr.evaluate
    write_html_report("report.html", ReportInput(name, rows, utterances, loaded, decoder, decoding))

The page holds:
  * the summary: WER and CER with their substitutions, deletions and insertions;
  * WER and CER by speaker and by duration bucket;
  * the most frequent word and character confusions (ref -> hyp; `*` is a deletion or insertion);
  * the worst utterances (highest WER, then most errors), at most `max_utterances` of them and
    saying so: reference and hypothesis aligned and coloured, an audio player, and the picture of
    the utterance's decoding (asr.explain).
Everything is inside the file (pictures as PNG and audio as Ogg/Opus data URIs, styles inline, no
script), so it opens offline and can be mailed. It is written atomically.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.atomic import atomic_write
from asr.audio import SAMPLE_RATE, load_audio
from asr.checkpoint import LoadedModel
from asr.data.manifest import Utterance
from asr.decode import Decoder
from asr.explain import MAX_SPAN_SECONDS, explain_audio, png_bytes
from asr.metrics import ErrorCounts, align_chars, align_words

MAX_UTTERANCES = 20  # utterances shown by default: each carries a picture (~50-150 kB) and its audio
DURATION_BUCKETS = (0.0, 2.0, 5.0, 10.0, 20.0)  # seconds: lower edges of the duration rows
TOP_CONFUSIONS = 15  # rows of each confusion table
PICTURE_DPI = 80  # smaller than asr explain's PNGs (100): a page holds many


@dataclass
class ReportInput:
    """What `asr evaluate` computed, and what the page needs to redo one utterance's picture."""

    name: str  # test set name
    rows: list[dict]  # asr.evaluate.score's rows: id, ref, hyp, ...
    utterances: list[Utterance]  # in the order of `rows`
    loaded: LoadedModel
    decoder: Decoder
    decoding: str  # asr.explain.describe of the decoder's options


@dataclass
class Scored:
    """One utterance's errors at both levels."""

    utt: Utterance
    words: ErrorCounts
    word_pairs: list[tuple[str, str]]
    chars: ErrorCounts
    char_pairs: list[tuple[str, str]]


def rate(counts: ErrorCounts) -> str:
    return f"{100 * counts.rate:.2f}%"


def score_rows(rows: list[dict], utterances: list[Utterance]) -> list[Scored]:
    """Word and character alignments of each row (the same jiwer alignment asr.evaluate scores with)."""
    scored = []
    for utt, row in zip(utterances, rows):
        words, word_pairs = align_words(row["ref"], row["hyp"])
        chars, char_pairs = align_chars(row["ref"], row["hyp"])
        scored.append(Scored(utt, words, word_pairs, chars, char_pairs))
    return scored


def group_table(scored: list[Scored], key: Callable[[Scored], str]) -> list[tuple[str, int, ErrorCounts, ErrorCounts]]:
    """(group, utterances, word counts, char counts) per value of `key`, in order of first appearance."""
    groups: dict[str, list] = {}
    for s in scored:
        entry = groups.setdefault(key(s), [0, ErrorCounts(), ErrorCounts()])
        entry[0] += 1
        entry[1] += s.words
        entry[2] += s.chars
    return [(name, n, words, chars) for name, (n, words, chars) in groups.items()]


def duration_bucket(seconds: float) -> str:
    """The DURATION_BUCKETS row of an utterance of `seconds`: '2-5 s', '20+ s'."""
    edges = [*DURATION_BUCKETS, float("inf")]
    i = max(j for j, low in enumerate(DURATION_BUCKETS) if seconds >= low)
    high = edges[i + 1]
    return f"{edges[i]:g}+ s" if high == float("inf") else f"{edges[i]:g}-{high:g} s"


def confusions(pairs: list[list[tuple[str, str]]], top: int = TOP_CONFUSIONS) -> list[tuple[str, str, int]]:
    """The `top` most frequent (ref, hyp, count) over aligned pairs that differ; '*' marks a
    deletion (hyp) or an insertion (ref). Ties in order of first appearance."""
    counts = Counter((r, h) for utterance in pairs for r, h in utterance if r != h)
    return [(r, h, n) for (r, h), n in counts.most_common(top)]


def worst(scored: list[Scored], limit: int) -> list[Scored]:
    """The `limit` utterances with the highest WER, then the most word errors, then the highest CER,
    then by id; only those with some error (a word or a character)."""
    wrong = [s for s in scored if s.words.errors or s.chars.errors]
    return sorted(wrong, key=lambda s: (-s.words.rate, -s.words.errors, -s.chars.rate, s.utt.id))[:limit]


def utterance_media(report: ReportInput, utt: Utterance) -> tuple[bytes, bytes, float]:
    """(PNG of its decoding, Ogg/Opus of its audio, seconds shown) for one utterance: its first
    MAX_SPAN_SECONDS at most. Runs the model on it again (a few tens of ms for a short utterance)."""
    seconds = min(utt.duration, MAX_SPAN_SECONDS)
    audio = load_audio(utt.audio_path, utt.offset, seconds)  # (samples,)
    explanation = explain_audio(report.loaded, audio, report.decoder, report.decoding, start=utt.offset)
    picture = png_bytes(explanation, title=utt.id, dpi=PICTURE_DPI)
    return picture, encode_audio(audio), seconds


def encode_audio(audio: np.ndarray) -> bytes:
    """float32 (samples,) at 16 kHz as Ogg/Opus (about 4 kB a second): small enough to embed."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLE_RATE, format="OGG", subtype="OPUS")
    return buffer.getvalue()


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def aligned_html(pairs: list[tuple[str, str]]) -> str:
    """Reference over hypothesis, word by word: correct words plain, substitutions orange,
    deletions (ref word, no hyp) red, insertions (hyp word, no ref) blue."""
    cells = []
    for r, h in pairs:
        kind = "ok" if r == h else "del" if h == "*" else "ins" if r == "*" else "sub"
        top, bottom = ("" if r == "*" else r), ("" if h == "*" else h)
        cells.append(f'<span class="w {kind}"><span>{html.escape(top) or "&nbsp;"}</span>'
                     f'<span>{html.escape(bottom) or "&nbsp;"}</span></span>')
    return "".join(cells)


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _counts_cells(counts: ErrorCounts) -> list[str]:
    return [rate(counts), str(counts.substitutions), str(counts.deletions), str(counts.insertions),
            str(counts.reference_length)]


def _groups_html(scored: list[Scored], key: Callable[[Scored], str], worst_first: bool = False) -> str:
    """A table of group_table's rows: in order of first appearance, or highest WER first."""
    groups = group_table(scored, key)
    if worst_first:
        groups.sort(key=lambda g: (-g[2].rate, -g[3].rate, g[0]))
    return _table(["", "utterances", "WER", "CER", "words"],
                  [[html.escape(g), str(n), rate(w), rate(c), str(w.reference_length)] for g, n, w, c in groups])


def _show(token: str) -> str:
    return "(space)" if token == " " else html.escape(token)


STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th { background: #f0f0f0; } td:first-child { text-align: left; }
.side { display: flex; gap: 3em; flex-wrap: wrap; }
.utt { border-top: 2px solid #888; margin-top: 1.5em; padding-top: 0.5em; }
.w { display: inline-flex; flex-direction: column; margin: 0 0.25em 0.4em 0; padding: 0 0.15em; }
.w span:last-child { border-top: 1px dotted #aaa; }
.sub { background: #ffd8a8; } .del { background: #ffb3b3; } .ins { background: #b3d1ff; }
.legend span { padding: 0 0.4em; margin-right: 0.5em; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
"""


def render_html(report: ReportInput, scored: list[Scored], shown: list[tuple[Scored, bytes, bytes, float]],
                limit: int) -> str:
    """The page (a str) for `scored`, with the media of the `shown` utterances."""
    words = sum((s.words for s in scored), ErrorCounts())
    chars = sum((s.chars for s in scored), ErrorCounts())
    head = ["", "error rate", "substitutions", "deletions", "insertions", "reference length"]
    summary = _table(head, [["words (WER)", *_counts_cells(words)], ["characters (CER)", *_counts_cells(chars)]])
    by_speaker = _groups_html(scored, lambda s: s.utt.speaker or "-", worst_first=True)
    by_duration = _groups_html(sorted(scored, key=lambda s: s.utt.duration), lambda s: duration_bucket(s.utt.duration))
    confusion_head = ["reference", "hypothesis", "count"]
    word_confusions = _table(confusion_head, [[_show(r), _show(h), str(n)]
                                              for r, h, n in confusions([s.word_pairs for s in scored])])
    char_confusions = _table(confusion_head, [[_show(r), _show(h), str(n)]
                                              for r, h, n in confusions([s.char_pairs for s in scored])])
    wrong = sum(1 for s in scored if s.words.errors or s.chars.errors)
    cap = (f"{wrong} of {len(scored)} utterances have errors; here are the {len(shown)} worst (highest WER "
           f"first): the page shows at most {limit} (--report-utterances).")
    blocks = []
    for s, picture, audio, seconds in shown:
        clipped = f" (first {seconds:g} s of {s.utt.duration:g} s)" if seconds < s.utt.duration else ""
        blocks.append(
            f'<div class="utt" id="{html.escape(s.utt.id)}"><h3>{html.escape(s.utt.id)}</h3>'
            f"<p>speaker {html.escape(s.utt.speaker or '-')}, {s.utt.duration:.2f} s{clipped}: "
            f"WER {rate(s.words)} ({s.words.errors} of {s.words.reference_length} words), CER {rate(s.chars)}</p>"
            f'<div class="aligned">{aligned_html(s.word_pairs)}</div>'
            f'<audio controls preload="none" src="{data_uri("audio/ogg", audio)}"></audio>'
            f'<img alt="decoding of {html.escape(s.utt.id)}" src="{data_uri("image/png", picture)}"></div>')
    model = html.escape(Path(report.loaded.path).name or "model")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(report.name)}: WER {rate(words)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(report.name)}: WER {rate(words)}, CER {rate(chars)}</h1>
<p>{len(scored)} utterances, model {model}, decoding: {html.escape(report.decoding)}.</p>
<h2>Summary</h2>{summary}
<div class="side"><div><h2>By speaker</h2>{by_speaker}</div>
<div><h2>By duration</h2>{by_duration}</div></div>
<div class="side"><div><h2>Word confusions</h2>{word_confusions}</div>
<div><h2>Character confusions</h2>{char_confusions}</div></div>
<h2>Worst utterances</h2><p>{cap}</p>
<p class="legend">Reference above, hypothesis below: <span class="sub">substitution</span>
<span class="del">deletion</span><span class="ins">insertion</span></p>
{"".join(blocks)}
</body></html>
"""


def write_html_report(path: str | os.PathLike, report: ReportInput, max_utterances: int = MAX_UTTERANCES) -> Path:
    """Score, draw the worst `max_utterances` and write the page at `path` atomically. Returns `path`."""
    scored = score_rows(report.rows, report.utterances)
    shown = [(s, *utterance_media(report, s.utt)) for s in worst(scored, max_utterances)]
    with atomic_write(path) as f:
        f.write(render_html(report, scored, shown, max_utterances))
    return Path(path)
