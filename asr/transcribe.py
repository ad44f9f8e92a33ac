"""Transcribe audio files of any length: `asr transcribe FILE_OR_FOLDER... --model CKPT`.

Long audio (what `transcribe_file` and `iter_transcripts` do):
  * A file is never decoded whole. It is cut into windows of `window_seconds`
    (20 s by default) that overlap by at least `overlap_seconds` (4 s), spread
    evenly so every window has the full length, and each window is read on its
    own with `load_audio(path, offset, duration)`. Only a few batches of windows
    are in memory at a time, so peak memory does not grow with the file's length
    (benchmarks/transcribe.py measures it on 1 to 60-minute files).
  * Each window gets the same per-utterance CMVN as a training utterance
    (`LogMel`), and the default window is as long as the longest training
    utterances of our recipes (speechocean762: 2 to 20 s). A file no longer than
    one window is one window: exactly what `asr evaluate` computes.
  * Windows, from one file or several, are batched through the model; each is
    decoded on its own, its tokens in the outer quarter of each overlap are
    dropped (there the window lacks context, and a cut-off sound at its very
    edge can come out as a stray letter), and its words are timed from the
    file's start (`add_word_timings(..., offset=window start)`).
  * Stitching: two neighbouring windows both hear the speech in the middle half
    of their overlap. `choose_cut` picks a time there that cuts as few words as
    possible from either window, usually none; words before the cut come from
    the left window and words after it from the right one, each word by its
    centre. So a word at a window boundary is taken once, from a window that
    heard all of it.

Batch runs (`transcribe_many`, the CLI):
  * a progress bar in audio seconds, and `jobs` threads reading and featurizing
    audio ahead of the model;
  * with `--output FILE`, one line per file (txt: `path<TAB>text`, jsonl:
    `{"file", "text", "words"}`, see asr.subtitles) is appended with a single
    write as soon as the file is done, so a killed run leaves only whole lines;
    `--resume` skips the files already in FILE (and drops a torn last line left
    by a crash);
  * a file that cannot be read is reported on stderr in one line, is not written
    to the output (a resumed run tries it again) and the exit status is then 1.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from asr.audio import AUDIO_EXTENSIONS, AudioError, audio_info, load_audio
from asr.checkpoint import LoadedModel
from asr.config import ConfigError
from asr.decode import Decoder, Hypothesis, Word, add_word_timings
from asr.errors import AsrError
from asr.features import LogMel
from asr.text import CharTokenizer

LINE_FORMATS = ("txt", "jsonl")  # formats that `--output` can append to, one line per file


class OutputError(AsrError):
    """An output file that cannot be written or resumed. The message names the file."""


@dataclass(frozen=True)
class TranscribeOptions:
    """How long audio is cut and batched. Frozen: build a new one to change it."""

    window_seconds: float = 20.0  # audio per model input
    overlap_seconds: float = 4.0  # at least this much shared by neighbouring windows
    batch_windows: int = 8  # windows per model call
    jobs: int = 1  # threads reading and featurizing audio ahead of the model

    def __post_init__(self):
        if self.window_seconds <= 0 or self.overlap_seconds < 0:
            raise ConfigError("window_seconds must be positive and overlap_seconds not negative")
        if self.overlap_seconds > self.window_seconds / 2:
            raise ConfigError("overlap_seconds must be at most half of window_seconds")
        if self.batch_windows < 1 or self.jobs < 1:
            raise ConfigError("batch_windows and jobs must be at least 1")


@dataclass(frozen=True)
class Window:
    """A span of a file to run the model on, and the part of it whose tokens may be used."""

    start: float  # seconds from the start of the file
    duration: float | None  # seconds; None: to the end of the file
    keep_start: float = 0.0  # tokens before this time (s) are dropped: the outer quarter
    keep_end: float = math.inf  # ... and from this time on: of each overlap, short of context


def plan_windows(duration: float, frame_seconds: float, options: TranscribeOptions) -> list[Window]:
    """Windows covering [0, duration): all `window_seconds` long (the last one reads to the end),
    evenly spaced with at least `overlap_seconds` shared, starts on model frame boundaries."""
    if duration <= options.window_seconds:
        return [Window(0.0, None)]
    length = options.window_seconds
    count = math.ceil((duration - length) / (length - options.overlap_seconds)) + 1
    spacing = (duration - length) / (count - 1)
    # Frame-aligned starts keep every window's output frames on the file's frame grid.
    starts = sorted({round(math.floor(i * spacing / frame_seconds + 1e-9) * frame_seconds, 6) for i in range(count)})
    windows = []
    for i, start in enumerate(starts):
        last = i == len(starts) - 1
        keep_start = start + (starts[i - 1] + length - start) / 4 if i else 0.0
        keep_end = math.inf if last else start + length - (start + length - starts[i + 1]) / 4
        windows.append(Window(start, None if last else length, round(keep_start, 6), round(keep_end, 6)))
    return windows


@dataclass
class Piece:
    """One window's decoding, trimmed to the window's keep span; word times are from the file's start."""

    window: Window
    hyp: Hypothesis
    frame_offset: int  # file frame of the window's first output frame


def choose_cut(left: list[Word], right: list[Word], lo: float, hi: float) -> float:
    """A time in [lo, hi] (where both windows' decodings are kept) that cuts as few words,
    of either window, as possible; among equals, the one nearest the middle."""
    centre = (lo + hi) / 2
    nearby = [w for w in [*left, *right] if w.end > lo and w.start < hi]
    candidates = [centre] + [t for w in nearby for t in (w.start, w.end) if lo <= t <= hi]
    return min(candidates, key=lambda t: (sum(w.start < t < w.end for w in nearby), abs(t - centre)))


def stitch(pieces: list[Piece], space_id: int) -> Hypothesis:
    """Join the decodings of consecutive windows of one file into one Hypothesis.

    Words come from the window whose share (between the cuts at its two overlaps)
    holds the word's centre. The result's tokens are the kept words' tokens, with
    frames counted from the file's start, joined by a space token placed on the
    frame after each word. A stitched `score` is 0: window scores do not add up.
    """
    if len(pieces) == 1:
        return pieces[0].hyp
    cuts = [-math.inf]
    for a, b in zip(pieces, pieces[1:]):
        cut = choose_cut(a.hyp.words, b.hyp.words, b.window.keep_start, a.window.keep_end)
        # Where three windows overlap a cut could fall before the previous one; each
        # piece's share must stay an interval, so cuts never go backwards.
        cuts.append(max(cuts[-1], cut))
    cuts.append(math.inf)
    words, tokens, frames = [], [], []
    for piece, lo, hi in zip(pieces, cuts, cuts[1:]):
        for word, (word_tokens, word_frames) in zip(piece.hyp.words, _word_tokens(piece.hyp, space_id)):
            if lo <= (word.start + word.end) / 2 < hi:
                if words:
                    tokens.append(space_id)
                    frames.append(frames[-1] + 1)
                words.append(word)
                tokens.extend(word_tokens)
                frames.extend(f + piece.frame_offset for f in word_frames)
    return Hypothesis(" ".join(w.text for w in words), tokens, frames, 0.0, words)


def _word_tokens(hyp: Hypothesis, space_id: int) -> list[tuple[list[int], list[int]]]:
    """(tokens, frames) of each word of `hyp`, in the order of `hyp.words`."""
    groups, current = [], ([], [])
    for token, frame in [*zip(hyp.tokens, hyp.frames), (space_id, -1)]:
        if token != space_id:
            current[0].append(token)
            current[1].append(frame)
        elif current[0]:
            groups.append(current)
            current = ([], [])
    return groups


def _trim(hyp: Hypothesis, window: Window, frame_seconds: float, tokenizer: CharTokenizer) -> Hypothesis:
    """Drop the tokens outside the window's keep span (edge effects: missing context, and
    the abrupt start or end of the audio the window was cut from)."""
    if window.keep_start <= window.start and window.keep_end == math.inf:
        return hyp
    kept = [(t, f) for t, f in zip(hyp.tokens, hyp.frames)
            if window.keep_start <= window.start + f * frame_seconds < window.keep_end]
    tokens, frames = [t for t, _ in kept], [f for _, f in kept]
    return replace(hyp, text=" ".join(tokenizer.decode(tokens).split()), tokens=tokens, frames=frames, words=[])


@dataclass
class _FileState:
    path: Path
    windows: list[Window]
    pieces: list[Piece] = field(default_factory=list)
    error: AudioError | None = None
    decoded_until: float = 0.0  # seconds of the file decoded so far (for progress)


def iter_transcripts(loaded: LoadedModel, paths: Iterable[str | Path], decoder: Decoder,
                     options: TranscribeOptions = TranscribeOptions(),
                     on_audio: Callable[[float], None] | None = None) -> Iterator[tuple[Path, Hypothesis | AudioError]]:
    """Yield `(path, Hypothesis)`, or `(path, AudioError)` for an unusable file, in input order.

    `on_audio(seconds)` is called as audio is decoded (for a progress bar).
    """
    logmel = LogMel(loaded.features)
    frame_seconds = loaded.frame_seconds
    device = next(loaded.model.parameters()).device
    space_id = loaded.tokenizer.space_id

    def plan(path: Path) -> _FileState:
        try:
            return _FileState(path, plan_windows(audio_info(path)[0], frame_seconds, options))
        except AudioError as err:
            return _FileState(path, [], error=err)

    def featurize(path: Path, window: Window) -> torch.Tensor:
        audio = torch.from_numpy(load_audio(path, window.start, window.duration))  # (samples,)
        with torch.inference_mode():
            return logmel(audio)  # (frames, mels)

    def run_batch(batch: list[tuple[_FileState, Window, torch.Tensor]]) -> None:
        features = pad_sequence([f for _, _, f in batch], batch_first=True)  # (batch, frames, mels)
        lengths = torch.tensor([f.shape[0] for _, _, f in batch])  # (batch,)
        with torch.inference_mode():
            log_probs, out_lengths = loaded.model(features.to(device), lengths.to(device))  # (batch, out_frames, vocab)
        for (state, window, _), hyp, lp, n in zip(batch, decoder.decode(log_probs, out_lengths), log_probs,
                                                  out_lengths.tolist()):
            hyp = _trim(hyp, window, frame_seconds, loaded.tokenizer)
            add_word_timings(hyp, lp[:n], frame_seconds, space_id, offset=window.start)
            state.pieces.append(Piece(window, hyp, round(window.start / frame_seconds)))
            end = window.start + n * frame_seconds
            if on_audio:
                on_audio(max(0.0, end - state.decoded_until))
            state.decoded_until = max(end, state.decoded_until)

    with ThreadPoolExecutor(options.jobs) as pool:
        ahead = max(2 * options.batch_windows, options.jobs)  # windows read ahead of the model
        pending: deque = deque()  # (state, window, future) in file order
        waiting: deque = deque()  # files not yielded yet, in input order
        batch: list = []

        def drain() -> Iterator[tuple[Path, Hypothesis | AudioError]]:
            """Run the model on `batch`, then yield every leading file that is complete."""
            if batch:
                run_batch(batch)
                batch.clear()
            while waiting and (waiting[0].error or len(waiting[0].pieces) == len(waiting[0].windows)):
                state = waiting.popleft()
                yield state.path, state.error or stitch(state.pieces, space_id)

        def take_one() -> Iterator[tuple[Path, Hypothesis | AudioError]]:
            state, window, future = pending.popleft()
            if state.error:
                future.cancel()
                return
            try:
                batch.append((state, window, future.result()))
            except AudioError as err:
                state.error = err
                batch[:] = [item for item in batch if item[0] is not state]
            if len(batch) == options.batch_windows or state.error:
                yield from drain()

        for state in map(plan, map(Path, paths)):
            waiting.append(state)
            for window in state.windows:
                pending.append((state, window, pool.submit(featurize, state.path, window)))
                while len(pending) > ahead:
                    yield from take_one()
        while pending:
            yield from take_one()
        yield from drain()


def transcribe_file(loaded: LoadedModel, path: str | Path, decoder: Decoder,
                    options: TranscribeOptions = TranscribeOptions()) -> Hypothesis:
    """Decode one file of any length. Raises asr.audio.AudioError for unusable audio."""
    [(_, result)] = iter_transcripts(loaded, [path], decoder, options)
    if isinstance(result, AudioError):
        raise result
    return result


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given; folders replaced by the audio files under them (sorted). No path twice."""
    paths = []
    for item in map(Path, inputs):
        if item.is_dir():
            paths.extend(sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS))
        else:
            paths.append(item)
    return list(dict.fromkeys(paths))


def format_result(path: Path, hyp: Hypothesis, fmt: str) -> str:
    if fmt != "txt":  # jsonl (with timed words), srt, vtt
        from asr.subtitles import render

        return render(path, hyp, fmt)
    return f"{path}\t{hyp.text}"


def finished_files(output: str | Path, fmt: str) -> set[str]:
    """The files an earlier run already wrote to `output` (txt or jsonl lines).

    A last line without its newline (a crash mid-write) is cut off the file, so that
    file is done again.
    """
    output = Path(output)
    if not output.exists():
        return set()
    data = output.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) < len(data):
        with open(output, "r+b") as f:
            f.truncate(len(complete))
    done = set()
    for line_no, line in enumerate(complete.decode("utf-8", errors="replace").splitlines(), 1):
        try:
            done.add(str(json.loads(line)["file"]) if fmt == "jsonl" else line[: line.index("\t")])
        except (ValueError, KeyError, TypeError):
            raise OutputError(f"{output}:{line_no}: not a {fmt} transcript line; is --format right?") from None
    return done


def transcribe_many(loaded: LoadedModel, paths: list[Path], decoder: Decoder, fmt: str = "txt",
                    out=None, options: TranscribeOptions = TranscribeOptions(),
                    output: str | Path | None = None, resume: bool = False) -> int:
    """Transcribe `paths`, writing each result as soon as it is done. Returns the number of failures.

    Results go to `out` (default: sys.stdout; one entry per file, `format_result`), or with `output` are
    appended to that file one whole line at a time; `resume` skips the files already
    there. Without `resume` an existing, non-empty `output` is refused rather than lost.
    """
    out = out or sys.stdout
    fd, paths = (None, paths) if output is None else _open_output(Path(output), fmt, resume, paths)
    total = 0.0  # seconds of audio, for the progress bar (headers only: cheap)
    for path in paths:
        try:
            total += audio_info(path)[0]
        except AudioError:
            pass  # reported when its turn comes
    bar = tqdm(total=total, unit="s", desc="audio", disable=None, file=sys.stderr,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}, {rate_fmt}]")

    def progress(seconds: float) -> None:
        # The last output frame of a file can reach past its end: never count beyond the total.
        bar.update(max(0.0, min(seconds, bar.total - bar.n)))

    failures = 0
    try:
        for path, result in iter_transcripts(loaded, paths, decoder, options, on_audio=progress):
            if isinstance(result, AudioError):
                bar.write(f"error: {result}", file=sys.stderr)
                failures += 1
            elif fd is None:
                bar.write(format_result(path, result, fmt), file=out)  # keeps the bar off the line
                out.flush()
            else:
                _append_line(fd, format_result(path, result, fmt))
    finally:
        bar.close()
        if fd is not None:
            os.close(fd)
    return failures


def _open_output(output: Path, fmt: str, resume: bool, paths: list[Path]) -> tuple[int, list[Path]]:
    """Open `output` for appending; returns its descriptor and the paths still to do."""
    if fmt not in LINE_FORMATS:
        raise OutputError(f"{output}: --output takes one line per file: use --format {' or '.join(LINE_FORMATS)}")
    if resume:
        done = finished_files(output, fmt)
        paths = [p for p in paths if str(p) not in done]
        if done:
            print(f"resuming: {len(done)} file(s) already in {output}, {len(paths)} to go", file=sys.stderr)
    elif output.exists() and output.stat().st_size:
        raise OutputError(f"{output}: already exists; pass --resume to continue it, or remove it")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        return os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644), paths
    except OSError as err:
        raise OutputError(f"{output}: cannot write ({err.strerror})") from None


def _append_line(fd: int, line: str) -> None:
    """One write(2) of a whole line to an O_APPEND file: a kill leaves all of it or none."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    while data:
        data = data[os.write(fd, data):]
