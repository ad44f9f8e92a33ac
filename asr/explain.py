"""A picture of one file's decoding: `asr explain FILE --out file.png [--start S --end E]`.

    explanation = explain_file(loaded, "talk.wav", decoder, start=12.0, end=22.0)   # runs the model once
    draw(explanation, "talk.png")                       # PNG on disk (atomic); png_bytes(...) for the HTML report

Three panels on one time axis (seconds in the file):
  1. the normalized log-mel spectrogram the network hears, `(frames, mels)`, a column every 10 ms;
  2. its per-frame posteriors, one row per output symbol (blank included), a column per model
     output frame (`LoadedModel.frame_seconds`), with the greedy path (the best symbol of each
     frame) dotted over it;
  3. the words: greedy decoding's and, when the model decodes otherwise by default (beam search,
     with an LM for the bundled model), the final words, each a bar from its start to its end
     coloured by its confidence (`asr.decode.add_word_timings`: the mean posterior of its letters).
A picture shows at most MAX_SPAN_SECONDS; a longer recording is drawn a span at a time.
`asr evaluate --report` puts this picture next to each utterance it shows (asr.report).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asr.atomic import atomic_path
from asr.audio import SAMPLE_RATE, audio_info, load_audio
from asr.checkpoint import LoadedModel
from asr.decode import Decoder, DecodingOptions, GreedyDecoder, Hypothesis, add_word_timings
from asr.errors import AsrError
from asr.features import LogMel
from asr.text import BLANK, SPACE

MAX_SPAN_SECONDS = 60.0  # wider pictures are unreadable; longer recordings are drawn a span at a time
DPI = 100  # pixels per inch of the PNG
HEIGHT = 8.5  # inches: spectrogram, posteriors (a row per symbol), words


class ExplainError(AsrError):
    """A span that does not fit the file, or one too long to draw."""


@dataclass
class Explanation:
    """What the model made of a stretch of audio: everything one picture shows."""

    start: float  # seconds in the file where the span starts
    seconds: float  # length of the span
    features: torch.Tensor  # (frames, mels) normalized log-mel
    hop_seconds: float  # seconds per feature frame
    log_probs: torch.Tensor  # (out_frames, vocab) the network's output
    frame_seconds: float  # seconds per output frame
    vocab: list[str]  # output symbols, blank first
    greedy: Hypothesis  # best path, words timed in file seconds
    final: Hypothesis | None  # the model's default decoding when it is not greedy, words timed
    decoding: str  # how `final` was decoded, e.g. "beam 50 + LM lm.bin (weight 2)"


def describe(options: DecodingOptions) -> str:
    """A short name for a decoding, for titles: 'greedy', 'beam 50', 'beam 50 + LM lm.bin (weight 2)'."""
    if options.decoder == "greedy":
        return "greedy"
    lm = f" + LM {Path(options.lm).name} (weight {options.lm_weight:g})" if options.lm else ""
    return f"beam {options.beam_size}{lm}"


@torch.inference_mode()
def explain_audio(loaded: LoadedModel, audio: np.ndarray, decoder: Decoder, decoding: str,
                  start: float = 0.0) -> Explanation:
    """Run the model on float32 `audio` (samples,) at 16 kHz that begins `start` seconds into its file,
    decode it greedily and with `decoder` (named `decoding`), and time the words."""
    features = LogMel(loaded.features)(torch.from_numpy(np.ascontiguousarray(audio)))  # (frames, mels)
    device = next(loaded.model.parameters()).device
    log_probs, lengths = loaded.model(features[None].to(device), torch.tensor([features.shape[0]], device=device))
    log_probs = log_probs.float().cpu()[:, : int(lengths[0])]  # (1, out_frames, vocab)
    lengths = lengths.cpu()
    space, frame_seconds = loaded.tokenizer.space_id, loaded.frame_seconds

    def timed(hyp: Hypothesis) -> Hypothesis:
        return add_word_timings(hyp, log_probs[0], frame_seconds, space, offset=start)

    greedy = timed(GreedyDecoder(loaded.tokenizer).decode(log_probs, lengths)[0])
    final = None if isinstance(decoder, GreedyDecoder) else timed(decoder.decode(log_probs, lengths)[0])
    return Explanation(start, len(audio) / SAMPLE_RATE, features, loaded.features.hop_ms / 1000, log_probs[0],
                       frame_seconds, list(loaded.tokenizer.vocab), greedy, final, decoding)


def file_span(path: str | os.PathLike, start: float | None, end: float | None) -> tuple[float, float]:
    """The (start, end) seconds to draw of `path`: the whole file by default, `end` clipped to its
    length. Raises ExplainError for a span outside the file or longer than MAX_SPAN_SECONDS."""
    duration = audio_info(path)[0]
    begin = 0.0 if start is None else start
    finish = duration if end is None else min(end, duration)
    if begin < 0 or begin >= duration:
        raise ExplainError(f"{path}: --start {begin:g} s is outside the file ({duration:.2f} s long)")
    if finish <= begin:
        raise ExplainError(f"{path}: --end {end:g} s is not after --start {begin:g} s")
    if finish - begin > MAX_SPAN_SECONDS:
        raise ExplainError(f"{path}: {finish - begin:.1f} s is too long for one picture (at most "
                           f"{MAX_SPAN_SECONDS:g} s): choose a span with --start and --end")
    return begin, finish


def explain_file(loaded: LoadedModel, path: str | os.PathLike, decoder: Decoder, decoding: str,
                 start: float | None = None, end: float | None = None) -> Explanation:
    """`explain_audio` on the span [start, end) seconds of an audio file (see `file_span`)."""
    begin, finish = file_span(path, start, end)
    return explain_audio(loaded, load_audio(path, begin, finish - begin), decoder, decoding, start=begin)


def figure_size(seconds: float) -> tuple[float, float]:
    """(width, height) in inches of the picture of `seconds` of audio: about 1.2 inches a second,
    so the words of a 10-second utterance have room (15 inches); at least 8, at most 40."""
    return min(40.0, max(8.0, 3.0 + 1.2 * seconds)), HEIGHT


def make_figure(explanation: Explanation, title: str = ""):
    """The matplotlib Figure (object API, no pyplot) of `explanation`."""
    from matplotlib.figure import Figure  # imported here: a second or two, only when drawing

    e = explanation
    t0, t1 = e.start, e.start + e.seconds
    fig = Figure(figsize=figure_size(e.seconds), layout="constrained")
    mel_ax, post_ax, word_ax = fig.subplots(3, 1, sharex=True, height_ratios=[2.2, 4.0, 1.8])
    final = f"; final words: {e.decoding}" if e.final is not None else ""
    fig.suptitle(f"{title or f'{e.start:.2f}-{t1:.2f} s'}{final}", fontsize=11)

    features = e.features.T.numpy()  # (mels, frames)
    mel_ax.imshow(features, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                  extent=(t0, t0 + features.shape[1] * e.hop_seconds, 0, features.shape[0]))
    mel_ax.set(ylabel="mel bin", title="log-mel spectrogram, normalized: what the network hears")

    posteriors = e.log_probs.exp().T.numpy()  # (vocab, out_frames)
    frames = posteriors.shape[1]
    post_end = t0 + frames * e.frame_seconds
    image = post_ax.imshow(posteriors, aspect="auto", cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest",
                           extent=(t0, post_end, len(e.vocab) - 0.5, -0.5))
    centres = t0 + (np.arange(frames) + 0.5) * e.frame_seconds
    best = posteriors.argmax(axis=0)  # (out_frames,) the greedy path, blank included
    post_ax.plot(centres, best, linestyle="none", marker=".", markersize=3, color="tab:red",
                 label="greedy path (best symbol per frame)")
    labels = ["blank" if s == BLANK else "space" if s == SPACE else s for s in e.vocab]
    post_ax.set_yticks(range(len(e.vocab)), labels, fontsize=7)
    post_ax.set(ylabel="output symbol",
                title=f"posteriors: a column every {1000 * e.frame_seconds:.0f} ms, blank on top")
    post_ax.legend(loc="lower right", fontsize=8)
    # one colour bar beside all three panels, so that they keep the same width and time axis
    fig.colorbar(image, ax=[mel_ax, post_ax, word_ax], label="posterior probability", shrink=0.5, pad=0.01)

    rows = [("greedy", e.greedy)] + ([("final", e.final)] if e.final is not None else [])
    cmap = _confidence_colours()
    for y, (_, hyp) in enumerate(reversed(rows)):
        for i, word in enumerate(hyp.words):
            word_ax.barh(y, word.end - word.start, left=word.start, height=0.35, color=cmap(word.confidence),
                         edgecolor="black", linewidth=0.4)
            word_ax.text((word.start + word.end) / 2, y + (0.22 if i % 2 == 0 else -0.22),
                         f"{word.text} {word.confidence:.2f}", ha="center",
                         va="bottom" if i % 2 == 0 else "top", fontsize=8)
    word_ax.set_yticks(range(len(rows)), [name for name, _ in reversed(rows)], fontsize=8)
    word_ax.set_ylim(-0.8, len(rows) - 0.2)
    word_ax.set(xlabel="seconds in the file", title="words: bar = start to end, colour and number = confidence")
    word_ax.set_xlim(t0, t1)
    for ax in (mel_ax, post_ax, word_ax):
        ax.tick_params(axis="x", labelbottom=True)
    return fig


def _confidence_colours():
    """Confidence 0 -> red, 0.5 -> yellow, 1 -> green."""
    from matplotlib import colormaps

    return colormaps["RdYlGn"]


def draw(explanation: Explanation, out: str | os.PathLike, title: str = "", dpi: int = DPI) -> Path:
    """Write the picture of `explanation` as a PNG at `out` (atomically). Returns `out`."""
    fig = make_figure(explanation, title)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return Path(out)


def png_bytes(explanation: Explanation, title: str = "", dpi: int = DPI) -> bytes:
    """The picture of `explanation` as PNG bytes (for embedding in a page)."""
    buffer = io.BytesIO()
    make_figure(explanation, title).savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
