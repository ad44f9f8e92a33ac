"""Transcribe recordings of any length: `asr transcribe FILE_OR_FOLDER...`, or from Python:

    loaded = load_model(path)
    hyp = transcribe(loaded, "talk.wav")     # or a float32 (samples,) array at 16 kHz
    hyp.text, hyp.words                       # words with start/end seconds in the recording

The pipeline, one function a step, chained in this order by `iter_transcripts`:
  1. read      a recording streams in 30 s blocks (`Recording.blocks`), never whole;
  2. segment   voice-activity detection cuts it where the speaker pauses, into segments of
               at most `max_segment_seconds`, and drops long silences (`plan_segments`, asr.vad);
               a recording no longer than that is one segment, as `asr evaluate` decodes an
               utterance (the VAD is loaded by the first recording that needs cutting);
  3. featurize each segment is read again (`Recording.read`) and gets its own per-utterance
               CMVN (`featurize`): the model sees it as it saw training utterances;
  4. batch     segments, of one recording or of several, go through the model `batch_segments`
               at a time (`run_model`), or with `batch_seconds` (a GPU) sorted by length
               into batches of that many padded seconds (`_batches`) ...
  5. decode    ... and each is decoded like an utterance (`decode_outputs`, in a thread of its
               own while the model runs the next batch), its words timed from the recording's
               start (`add_word_timings(offset=segment start)`);
  6. join      a recording's segments, in order, make its Hypothesis (`join_segments`).
Steps 1-3 run in `jobs` threads ahead of the model, each segment handed over as soon as the VAD
has found it (the model starts on a long recording before its end is read), a bounded number of
segments ahead, so memory stays flat however long the recording. Why cut at pauses, with what
measured gain: docs/design.md (benchmarks/long_audio.py measures WER, speed and memory).

Batch runs (`transcribe_many`, the CLI):
  * a progress bar over files and audio seconds (on a terminal), and one result per file,
    in input order, as soon as it is done:
      - stdout: one format; srt/vtt only for a single input (their blocks cannot be told apart);
      - `output=FILE`: one line per file (txt: `path<TAB>text`, jsonl: `{"file", "text",
        "words"}`) appended with a single write, so a killed run leaves only whole lines, and
        `resume` skips the files already there (dropping a torn last line left by a crash);
      - `output_dir=DIR`: a file per input and format (txt, jsonl, srt, vtt), named after the
        input as whisper's CLI does (`talk.wav` -> `DIR/talk.srt`; files found in a folder keep
        their path below it), each written atomically; `resume` skips inputs whose files exist;
  * a file that cannot be read is reported on stderr in one line and not written (a resumed
    run tries it again); the exit status is then 1.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from asr.atomic import atomic_write
from asr.audio import AUDIO_EXTENSIONS, SAMPLE_RATE, AudioError, audio_info, load_audio, stream_audio
from asr.checkpoint import LoadedModel
from asr.configs import TranscribeOptions
from asr.data.sampler import DurationBatchSampler
from asr.decode import Decoder, Hypothesis, add_word_timings, make_decoder
from asr.features import LogMel
from asr.vad import VAD_INSTALL, SegmentOptions, VadUnavailable, load_vad, speech_segments
from asr.writers import OutputError, check_outputs, transcript_file, transcript_line

BLOCK_SECONDS = 30.0  # audio read at a time for voice-activity detection
SORT_POOL = 4  # with batch_seconds: segments are gathered for this many batches, then sorted by length


class Recording:
    """Something to transcribe: an audio file, or float32 `(samples,)` at 16 kHz already in memory."""

    def __init__(self, source: str | os.PathLike | np.ndarray):
        self.source = source
        if isinstance(source, np.ndarray):
            if source.ndim != 1 or not np.issubdtype(source.dtype, np.floating):
                raise AudioError("<waveform>", f"expected float mono samples (samples,), got {source.dtype} "
                                               f"{tuple(source.shape)}")
            self.path, self.duration = None, len(source) / SAMPLE_RATE
        else:
            self.path = Path(source)
            self.duration = audio_info(self.path)[0]

    def blocks(self) -> Iterator[np.ndarray]:
        """The audio, BLOCK_SECONDS at a time: float32 (samples,) each."""
        if self.path is not None:
            return stream_audio(self.path, BLOCK_SECONDS)
        step = int(BLOCK_SECONDS * SAMPLE_RATE)
        return (self.source[i: i + step] for i in range(0, len(self.source), step))

    def read(self, start: float, end: float) -> np.ndarray:
        """The samples of [start, end) seconds: float32 (samples,)."""
        if self.path is not None:
            return load_audio(self.path, start, end - start)
        return np.ascontiguousarray(self.source[round(start * SAMPLE_RATE): round(end * SAMPLE_RATE)],
                                    dtype=np.float32)


def plan_segments(recording: Recording, vad, options: SegmentOptions,
                  vad_missing: VadUnavailable | None = None) -> Iterable[tuple[float, float]]:
    """Steps 1-2: the (start, end) seconds of the segments to decode, each as soon as the VAD has
    found it (an iterator). Without a VAD a recording is one segment, if it is no longer than a
    segment may be."""
    if vad is not None:
        return speech_segments(recording.blocks(), vad, options)
    if recording.duration > options.max_segment_seconds:
        why = f"silero-vad is not installed ({VAD_INSTALL})" if vad_missing else "--vad none was given"
        raise AudioError(recording.path or "<waveform>",
                         f"{recording.duration:.0f} s is longer than a segment may be "
                         f"({options.max_segment_seconds:g} s) and cannot be cut at pauses: {why}")
    return [(0.0, recording.duration)]


@dataclass
class Segment:
    """A stretch of one recording, ready for the model."""

    start: float  # seconds from the recording's start
    end: float
    features: torch.Tensor  # (frames, mels), normalized on this segment alone


def featurize(recording: Recording, span: tuple[float, float], logmel: LogMel) -> Segment:
    """Step 3: read a segment and compute its features."""
    audio = torch.from_numpy(recording.read(*span))  # (samples,)
    with torch.inference_mode():
        return Segment(*span, logmel(audio))


def run_model(loaded: LoadedModel, segments: list[Segment]) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 4: one model call for a batch of segments: log-probs (batch, out_frames, vocab) and
    their lengths (batch,)."""
    features = pad_sequence([s.features for s in segments], batch_first=True)  # (batch, frames, mels)
    lengths = torch.tensor([s.features.shape[0] for s in segments])  # (batch,)
    device = next(loaded.model.parameters(), torch.empty(0)).device  # an int8 model (CPU only) has no parameters
    with torch.inference_mode(), loaded.precision.autocast():
        return loaded.model(features.to(device), lengths.to(device))


def decode_outputs(loaded: LoadedModel, decoder: Decoder, segments: list[Segment], log_probs: torch.Tensor,
                   out_lengths: torch.Tensor) -> list[Hypothesis]:
    """Step 5: each segment's Hypothesis from `run_model`'s outputs; its words carry recording times."""
    hyps = decoder.decode(log_probs, out_lengths)
    for hyp, segment, lp, n in zip(hyps, segments, log_probs, out_lengths.tolist()):
        add_word_timings(hyp, lp[:n], loaded.frame_seconds, loaded.tokenizer.space_id, offset=segment.start)
    return hyps


def join_segments(pieces: list[tuple[Segment, Hypothesis]], space_id: int, frame_seconds: float) -> Hypothesis:
    """Step 6: one Hypothesis from a recording's decoded segments, in order. Token frames are
    counted from the recording's start (to the nearest output frame); a space token joins two
    segments; the score is the sum of the segments' scores."""
    words, tokens, frames = [], [], []
    for segment, hyp in pieces:
        kept = [i for i, token in enumerate(hyp.tokens) if token != space_id]
        if not kept:
            continue
        if tokens:
            tokens.append(space_id)
            frames.append(frames[-1])
        offset = round(segment.start / frame_seconds)
        tokens.extend(hyp.tokens[kept[0]: kept[-1] + 1])  # without spaces at either end
        frames.extend(f + offset for f in hyp.frames[kept[0]: kept[-1] + 1])
        words.extend(hyp.words)
    text = " ".join(hyp.text for _, hyp in pieces if hyp.text)
    return Hypothesis(text, tokens, frames, sum(hyp.score for _, hyp in pieces), words)


@dataclass
class _InFlight:
    """A recording on its way through the pipeline."""

    source: str | os.PathLike | np.ndarray
    pieces: list[tuple[Segment, Hypothesis]] = field(default_factory=list)  # decoded so far, in order
    error: AudioError | None = None
    duration: float = 0.0
    reported: float = 0.0  # seconds of it counted for progress

    def advance(self, until: float, on_audio: Callable[[float], None] | None) -> None:
        """Tell `on_audio` that the recording is decoded up to `until` seconds."""
        until = min(until, self.duration)  # a padded last segment can reach past the end
        if on_audio and until > self.reported:
            on_audio(until - self.reported)
            self.reported = until


class _VadOnDemand:
    """The VAD, loaded by the first recording long enough to be cut: a recording no longer than a
    segment may be is one segment and needs none, and loading onnxruntime and the silero session
    would cost that short file's start-up 0.1-0.2 s. Thread-safe (recordings are read in `jobs` threads)."""

    def __init__(self, name: str):
        self.name = name
        self.lock = threading.Lock()
        self.loaded: tuple | None = None  # (vad or None, VadUnavailable or None)

    def get(self) -> tuple:
        with self.lock:
            if self.loaded is None:
                try:
                    self.loaded = load_vad(self.name), None
                except VadUnavailable as err:  # short recordings do not need it (plan_segments)
                    self.loaded = None, err
            return self.loaded


_END = object()  # a _SegmentStream's last item


class _SegmentStream:
    """One recording's segments, handed from the thread that reads it to the model's thread:
    a bounded queue, so memory stays flat however long the recording. The reader stops early
    when the model's side has gone (`stopped`: an error, or the caller stopped iterating)."""

    def __init__(self, size: int):
        self.queue: queue.Queue = queue.Queue(size)
        self.stopped = threading.Event()

    def put(self, item) -> bool:
        """Hand over a Segment, an exception or _END; False once the model's side has gone."""
        while not self.stopped.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def items(self) -> Iterator:
        """What the reader hands over, up to _END: Segments, then maybe an exception."""
        while (item := self.queue.get()) is not _END:
            yield item


def _spans(audio: Recording, vads: _VadOnDemand, options: SegmentOptions) -> Iterable[tuple[float, float]]:
    """Steps 1-2: the segments' (start, end) seconds, found as the audio streams in."""
    if audio.duration <= options.max_segment_seconds:  # one segment, as `asr evaluate` decodes an utterance
        return [(0.0, audio.duration)]
    vad, vad_missing = vads.get()
    return plan_segments(audio, vad, options, vad_missing)


def _read(recording: _InFlight, stream: _SegmentStream, vads: _VadOnDemand, options: SegmentOptions,
          logmel: LogMel) -> None:
    """Steps 1-3 for one recording, in a pool thread: each segment featurized as soon as the VAD
    has found it, so the model starts on a long recording before its end has been read."""
    try:
        audio = Recording(recording.source)
        recording.duration = audio.duration
        for span in _spans(audio, vads, options):
            if not stream.put(featurize(audio, span, logmel)):
                return
    except Exception as err:  # an AudioError fails the recording; anything else is re-raised by _segments
        stream.put(err)
    finally:
        stream.put(_END)


def _drain(recording: _InFlight, stream: _SegmentStream) -> Iterator[tuple[_InFlight, Segment | None]]:
    try:
        for item in stream.items():
            if isinstance(item, AudioError):
                recording.error = item
            elif isinstance(item, BaseException):
                raise item
            else:
                yield recording, item
        yield recording, None
    finally:
        stream.stopped.set()


def _segments(pool: ThreadPoolExecutor, recordings: Iterable[_InFlight], read: Callable, ahead: int
              ) -> Iterator[tuple[_InFlight, Segment | None]]:
    """Steps 1-3, up to `ahead` recordings being read ahead of the one the model is on (at most `ahead`
    segments queued for each): (recording, Segment) for each of its segments, in order, then (recording,
    None) at its end, also when it failed (recording.error then says why)."""
    in_flight: deque = deque()
    try:
        for recording in recordings:
            stream = _SegmentStream(ahead)
            pool.submit(read, recording, stream)
            in_flight.append((recording, stream))
            if len(in_flight) > ahead:
                yield from _drain(*in_flight.popleft())
        while in_flight:
            yield from _drain(*in_flight.popleft())
    finally:  # stopped early: the readers still running return at their next segment
        for _, stream in in_flight:
            stream.stopped.set()


def _run(loaded: LoadedModel, decoder: Decoder, batch: list[tuple[_InFlight, Segment]],
         decoding: ThreadPoolExecutor, on_audio: Callable[[float], None] | None) -> Future:
    """Steps 4-5 for a batch: the model call here, the decoding in the `decoding` thread (the
    beam search releases the GIL), so it overlaps the next batch's model call. Each segment's
    Hypothesis joins its recording's pieces when the returned future is done. Progress
    (`on_audio`) is told here, after the model call, in the caller's thread."""
    segments = [segment for _, segment in batch]
    outputs = run_model(loaded, segments)
    for recording, segment in batch:
        recording.advance(segment.end, on_audio)

    def decode() -> None:
        for (recording, segment), hyp in zip(batch, decode_outputs(loaded, decoder, segments, *outputs)):
            recording.pieces.append((segment, hyp))

    return decoding.submit(decode)


def _batches(batch: list[tuple[_InFlight, Segment]], options: TranscribeOptions) -> list[list]:
    """The model calls for `batch`: as it came, or with `batch_seconds` sorted by length into
    batches of at most that many padded seconds (little padding, so a GPU's work is all speech)."""
    if not options.batch_seconds:
        return [batch]
    sampler = DurationBatchSampler([s.end - s.start for _, s in batch], options.batch_seconds, shuffle=False)
    return [[batch[i] for i in indices] for indices in sampler.batches(0)]


def _full(batch: list[tuple[_InFlight, Segment]], options: TranscribeOptions) -> bool:
    """Whether to run the model now: `batch_segments` segments, or with `batch_seconds`
    SORT_POOL batches' worth of audio (a pool to sort by length)."""
    if not options.batch_seconds:
        return len(batch) == options.batch_segments
    return sum(s.end - s.start for _, s in batch) >= SORT_POOL * options.batch_seconds


def _results(decoded: list[Future], finished: list[_InFlight], loaded: LoadedModel,
             on_audio: Callable[[float], None] | None) -> Iterator[tuple[object, Hypothesis | AudioError]]:
    """Step 6 for recordings whose segments are all in `decoded` or before: once those are done,
    (source, Hypothesis or AudioError)."""
    for future in decoded:
        future.result()  # re-raises what decoding raised
    for recording in finished:
        recording.advance(recording.duration, on_audio)
        pieces = sorted(recording.pieces, key=lambda piece: piece[0].start)  # batches sorted by length
        yield recording.source, recording.error or join_segments(pieces, loaded.tokenizer.space_id,
                                                                 loaded.frame_seconds)


def iter_transcripts(loaded: LoadedModel, sources: Iterable[str | os.PathLike | np.ndarray],
                     decoder: Decoder | None = None, options: TranscribeOptions = TranscribeOptions(),
                     on_audio: Callable[[float], None] | None = None
                     ) -> Iterator[tuple[object, Hypothesis | AudioError]]:
    """Yield `(source, Hypothesis)`, or `(source, AudioError)` for an unusable one, in input order.

    `decoder` defaults to the model's stored decoding options. `on_audio(seconds)` is called
    as audio is decoded (for a progress bar). Without silero-vad installed, recordings up to
    `max_segment_seconds` are still transcribed (whole); longer ones get an AudioError that
    says what to install.
    """
    decoder = decoder or make_decoder(loaded.decoding, loaded.tokenizer)
    read = functools.partial(_read, vads=_VadOnDemand(options.segments.vad), options=options.segments,
                             logmel=LogMel(loaded.features))
    with ThreadPoolExecutor(options.jobs) as pool, ThreadPoolExecutor(1) as decoding:
        recordings = (_InFlight(source) for source in sources)
        batch, finished = [], []  # segments for the model; recordings whose segments are all in batch or done
        previous: tuple[list[Future], list[_InFlight]] = ([], [])  # the batch being decoded, and its finished
        for recording, segment in _segments(pool, recordings, read, 2 * options.batch_segments):
            if segment is None:
                finished.append(recording)
            else:
                batch.append((recording, segment))
            if _full(batch, options):
                decoded = [_run(loaded, decoder, part, decoding, on_audio) for part in _batches(batch, options)]
                yield from _results(*previous, loaded, on_audio)
                previous, batch, finished = (decoded, finished), [], []
        yield from _results(*previous, loaded, on_audio)
        decoded = [_run(loaded, decoder, part, decoding, on_audio) for part in _batches(batch, options) if part]
        yield from _results(decoded, finished, loaded, on_audio)


def transcribe(loaded: LoadedModel, audio: str | os.PathLike | np.ndarray, decoder: Decoder | None = None,
               options: TranscribeOptions = TranscribeOptions()) -> Hypothesis:
    """Transcribe one recording of any length: a file, or float32 (samples,) at 16 kHz.
    Raises asr.audio.AudioError for unusable audio."""
    [(_, result)] = iter_transcripts(loaded, [audio], decoder, options)
    if isinstance(result, AudioError):
        raise result
    return result


# ---- batch runs: many inputs, outputs written as each file finishes -----------------------


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[Path]]:
    """(audio files, folders without any): files as given, folders replaced by the audio files
    under them (sorted). No file twice, however it is named (`a.wav`, `./a.wav`, its absolute path)."""
    paths, empty = [], []
    if any(not name.strip() for name in inputs):
        raise AudioError("''", "an empty name is no file or folder (to transcribe the current folder, say .)")
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
            paths.extend(found)
            if not found:
                empty.append(item)
        else:
            paths.append(item)
    unique: dict[Path, Path] = {}
    for path in paths:
        unique.setdefault(absolute(path), path)  # the first name given is kept
    return list(unique.values()), empty


def absolute(path: str | Path) -> Path:
    """`path` made absolute and normalized (`./sub/../sub/a.wav` -> `/cwd/sub/a.wav`): how inputs are told
    apart. Symbolic links are not followed: two links are two inputs, as their output names are."""
    return Path(os.path.abspath(path))


def output_names(paths: list[Path], inputs: list[str]) -> dict[Path, Path]:
    """Each input's output name under --output-dir, without extension: a file given by itself
    keeps its name (`talk.wav` -> `talk`), one found in a folder its path below that folder
    (`recordings/day1/a.wav` -> `day1/a`). Raises OutputError if two inputs get the same name."""
    folders = [Path(i) for i in inputs if Path(i).is_dir()]
    names: dict[Path, Path] = {}
    for path in paths:
        folder = next((f for f in folders if path.is_relative_to(f)), None)
        names[path] = (path.relative_to(folder) if folder else Path(path.name)).with_suffix("")
    seen: dict[Path, Path] = {}
    for path, name in names.items():
        if name in seen:
            raise OutputError(f"{seen[name]} and {path} would both be written as {name}.*; "
                              f"transcribe them into different --output-dir folders")
        seen[name] = path
    return names


def finished_files(output: str | Path, fmt: str) -> set[Path]:
    """The files an earlier run already wrote to `output` (txt or jsonl lines), as `absolute` paths.

    The file is read and every line checked before anything changes: a file that is not a
    transcript of `fmt` (a wrong --output) is refused untouched. Only then is a last line
    without its newline (a crash mid-write) cut off, so that file is done again.
    """
    output = Path(output)
    if not output.exists():
        return set()
    if output.is_dir():
        raise OutputError(f"{output}: is a folder; --output takes a file (or use --output-dir)")
    try:
        data = output.read_bytes()
    except OSError as err:
        raise OutputError(f"{output}: cannot read it to resume ({err.strerror})") from None
    complete = data[: data.rfind(b"\n") + 1]
    torn = data[len(complete):]
    try:
        text = complete.decode("utf-8")
    except UnicodeDecodeError:
        raise OutputError(f"{output}: not UTF-8 text, so not a {fmt} transcript file; is --output right?") from None
    done = set()
    for line_no, line in enumerate(text.splitlines(), 1):
        try:
            done.add(str(json.loads(line)["file"]) if fmt == "jsonl" else line[: line.index("\t")])
        except (ValueError, KeyError, TypeError):
            raise OutputError(f"{output}:{line_no}: not a {fmt} transcript line; is --format right?") from None
    if torn and not _starts_a_line(torn, fmt):
        raise OutputError(f"{output}: its last line is not a {fmt} transcript line; is --output right?")
    if torn:
        with open(output, "r+b") as f:
            f.truncate(len(complete))
    return {absolute(p) for p in done}


def _starts_a_line(torn: bytes, fmt: str) -> bool:
    """Whether `torn` can be a line of ours cut short by a crash: jsonl `{"file": ...`, txt `path<TAB>...`
    (a tab is the evidence: a line without one is someone else's text)."""
    if fmt == "jsonl":
        return torn.startswith(b'{"file": ')
    return b"\t" in torn and b"\0" not in torn


def transcribe_many(loaded: LoadedModel, paths: list[Path], decoder: Decoder, formats: tuple[str, ...] = ("txt",),
                    out=None, options: TranscribeOptions = TranscribeOptions(),
                    output: str | Path | None = None, output_dir: str | Path | None = None,
                    names: dict[Path, Path] | None = None, resume: bool = False,
                    hide_progress: bool | None = None) -> int:
    """Transcribe `paths`, writing each result as soon as it is done. Returns the number of failures.

    Results go to `out` (default: sys.stdout; asr.writers.transcript_line), or with `output` are appended to
    that file one whole line at a time, or with `output_dir` go to one file per input and format
    (named by `names`, default `output_names`). `resume` skips the inputs already done; without
    it an existing, non-empty `output` is refused rather than lost. The progress bar shows on a
    terminal unless `hide_progress` (asr.shard: one bar, rank 0's). See the module docstring.
    """
    check_outputs(formats, len(paths), output, output_dir, resume)
    out = out or sys.stdout
    fd = None
    if output is not None:
        [fmt] = formats
        fd, paths = _open_output(Path(output), fmt, resume, paths)
    elif output_dir is not None:
        names = names or output_names(paths, [str(p) for p in paths])
        targets = {path: [Path(output_dir) / f"{names[path]}.{fmt}" for fmt in formats] for path in paths}
        if resume:
            paths = [p for p in paths if not all(t.exists() for t in targets[p])]
    total = 0.0  # seconds of audio, for the progress bar (headers only: cheap)
    for path in paths:
        try:
            total += audio_info(path)[0]
        except AudioError:
            pass  # reported when its turn comes
    bar = tqdm(total=total, unit="s", desc="audio", disable=hide_progress, file=sys.stderr,
               postfix=f"0/{len(paths)} files",
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s{postfix} [{elapsed}<{remaining}]")

    def progress(seconds: float) -> None:
        bar.update(max(0.0, min(seconds, bar.total - bar.n)))

    failures = 0
    try:
        for done, (path, result) in enumerate(iter_transcripts(loaded, paths, decoder, options, on_audio=progress), 1):
            bar.set_postfix_str(f"{done}/{len(paths)} files")
            if isinstance(result, AudioError):
                bar.write(f"error: {result}", file=sys.stderr)
                failures += 1
            elif fd is not None:
                _append_line(fd, transcript_line(path, result, formats[0]))
            elif output_dir is not None:
                for fmt, target in zip(formats, targets[path]):
                    with atomic_write(target) as f:
                        f.write(transcript_file(path, result, fmt))
            else:
                bar.write(transcript_line(path, result, formats[0]), file=out)  # keeps the bar off the line
                out.flush()
    finally:
        bar.close()
        if fd is not None:
            os.close(fd)
    return failures


def _open_output(output: Path, fmt: str, resume: bool, paths: list[Path]) -> tuple[int, list[Path]]:
    """Open `output` for appending; returns its descriptor and the paths still to do."""
    if output.is_dir():
        raise OutputError(f"{output}: is a folder; --output takes a file (or use --output-dir)")
    if resume:
        done = finished_files(output, fmt)
        paths = [p for p in paths if absolute(p) not in done]
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
