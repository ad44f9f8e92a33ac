"""Voice activity detection, and cutting a recording into speech segments where people pause.

    vad = load_vad("silero")                                   # None for "none"
    for start, end in speech_segments(blocks, vad, SegmentOptions()):
        ...                                                    # seconds from the recording's start

`blocks` are consecutive float32 `(samples,)` arrays at 16 kHz (`asr.audio.stream_audio`), so
a recording of any length streams through: memory holds one block, its probabilities and the
regions of the segment being built. How a recording is cut:
  1. The VAD gives every 32 ms frame a speech probability. `SileroVAD` runs the silero-vad
     model shipped in its PyPI wheel with onnxruntime (no download, no torch), carrying
     its LSTM state from block to block.
  2. `speech_regions`: runs of speech frames, with hysteresis as silero's own segmenter has
     it: speech starts at `vad_threshold` and lasts until the probability falls below
     `vad_threshold - 0.15`. A run longer than `max_segment_seconds` is cut at its least
     speech-like frame (there is no pause to cut at).
  3. `group_regions`: regions less than `min_pause_seconds` apart belong to one segment. A
     segment that would grow beyond `max_segment_seconds` is cut at its longest pause.
     Segments with under `min_speech_seconds` of speech (a click, a breath) are dropped,
     and so is the silence between segments.
  4. Each segment keeps `pad_seconds` of audio before and after its speech (at most half
     the pause to a neighbour, so no audio is decoded twice): the model learned from
     utterances with a little silence around them.
The choice of silero over an energy threshold or webrtcvad, and of these defaults, was
measured: benchmarks/long_audio.py and benchmarks/README.md.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.config import ConfigError, option
from asr.errors import AsrError

VAD_INSTALL = "pip install silero-vad onnxruntime"  # core dependencies; missing only after pip install --no-deps
HYSTERESIS = 0.15  # speech ends below threshold - HYSTERESIS (silero's default)


class VadUnavailable(AsrError):
    """The VAD asked for is not installed. The message says how to install it."""


@dataclass(frozen=True)
class SegmentOptions:
    """How a recording is cut into segments for the model. Frozen: build a new one to change it."""

    vad: Literal["silero", "none"] = option("silero", "what finds the pauses; none: a file is one segment (<= max)")
    vad_threshold: float = option(0.5, "speech probability where speech starts")
    min_pause_seconds: float = option(0.5, "a pause at least this long ends a segment")
    max_segment_seconds: float = option(20.0, "longer speech is cut at its longest pause (training utterances: 2-20 s)")
    pad_seconds: float = option(0.3, "audio kept before and after each segment's speech")
    min_speech_seconds: float = option(0.25, "segments with less speech are dropped")

    def __post_init__(self):
        bounds = {"vad_threshold": (0.05, 0.95), "min_pause_seconds": (0.05, 10.0),
                  "max_segment_seconds": (1.0, 60.0), "pad_seconds": (0.0, 2.0), "min_speech_seconds": (0.0, 5.0)}
        for name, (low, high) in bounds.items():
            if not low <= getattr(self, name) <= high:
                raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {getattr(self, name):g}")


class SileroVAD:
    """silero-vad's model from its wheel, run by onnxruntime: a speech probability per 32 ms frame.

    The "sequence" export of the model takes many frames per call; each frame is fed with
    the last 64 samples of the previous one before it (the model's context), and the LSTM
    state (h, c) goes from one call to the next, so block-wise probabilities equal those
    of the whole recording at once.
    """

    MODEL = "silero_vad_16k_sequence.onnx"
    FRAME = 512  # samples per frame: 32 ms
    CONTEXT = 64  # samples of the previous frame that each frame sees
    MAX_FRAMES = 512  # frames per onnxruntime call (16 s)
    frame_seconds = FRAME / SAMPLE_RATE  # 0.032 s

    def __init__(self):
        self.session = _silero_session()

    def probabilities(self, blocks: Iterable[np.ndarray]) -> Iterator[float]:
        """Speech probability of each frame of the audio that `blocks` (float32 (samples,)) hold in turn;
        a last partial frame is padded with silence."""
        state = [np.zeros((1, 1, 128), dtype=np.float32), np.zeros((1, 1, 128), dtype=np.float32)]  # h, c
        context = np.zeros(self.CONTEXT, dtype=np.float32)
        pending = np.zeros(0, dtype=np.float32)
        for block in itertools.chain(blocks, [None]):  # one block at a time: never the whole recording
            if block is None:  # the end: pad the last partial frame
                block = np.zeros((-len(pending)) % self.FRAME, dtype=np.float32)
            pending = np.concatenate([pending, block])
            count = min(len(pending) // self.FRAME, self.MAX_FRAMES)
            while count:
                frames = pending[: count * self.FRAME].reshape(count, self.FRAME)  # (frames, 512)
                previous = np.concatenate([context[None], frames[:-1, -self.CONTEXT:]])  # (frames, 64)
                probs, *state = self.session.run(["speech_probs", "hn", "cn"], {
                    "input": np.concatenate([previous, frames], axis=1), "h": state[0], "c": state[1]})
                yield from probs.reshape(-1).tolist()
                context = frames[-1, -self.CONTEXT:].copy()
                pending = pending[count * self.FRAME:]
                count = min(len(pending) // self.FRAME, self.MAX_FRAMES)


@functools.lru_cache(maxsize=1)
def _silero_session():
    """One onnxruntime session per process (sessions are thread-safe; each stream keeps its own state)."""
    try:
        import onnxruntime
        import silero_vad
    except ImportError as err:
        raise VadUnavailable(f"the silero VAD needs {err.name}: {VAD_INSTALL}") from None
    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = options.intra_op_num_threads = 1  # the model is tiny; threads only cost
    path = resources.files(silero_vad).joinpath("data", SileroVAD.MODEL)
    with resources.as_file(path) as model:
        return onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])


def load_vad(name: str) -> SileroVAD | None:
    """The VAD called `name` (SegmentOptions.vad); None for "none". Raises VadUnavailable."""
    if name == "none":
        return None
    if name != "silero":
        raise ConfigError(f"unknown VAD {name!r} (choose from: silero, none)")
    return SileroVAD()


@dataclass(frozen=True)
class Region:
    """A run of speech frames: [start, end) in VAD frames."""

    start: int
    end: int


def speech_regions(probabilities: Iterable[float], max_frames: int, threshold: float) -> Iterator[Region]:
    """Runs of frames whose probability reaches `threshold`, lasting until it falls below
    threshold - HYSTERESIS; a run reaching `max_frames` is cut at its least speech-like
    frame in its second half."""
    start, run = None, []  # run: probabilities of the current region's frames
    for i, p in enumerate(probabilities):
        if start is None:
            if p >= threshold:
                start, run = i, [p]
            continue
        if p < threshold - HYSTERESIS:
            yield Region(start, i)
            start = None
            continue
        run.append(p)
        if len(run) >= max_frames:
            half = len(run) // 2
            cut = half + int(np.argmin(run[half:]))
            yield Region(start, start + cut)
            start, run = start + cut, run[cut:]
    if start is not None:
        yield Region(start, start + len(run))


def group_regions(regions: Iterable[Region], frame_seconds: float, options: SegmentOptions
                  ) -> Iterator[tuple[float, float]]:
    """Join regions into segments (see the module docstring); yields (start, end) in seconds, padded."""
    min_pause = options.min_pause_seconds / frame_seconds
    max_length = options.max_segment_seconds / frame_seconds
    pad = options.pad_seconds / frame_seconds
    previous_end = -np.inf  # speech end (frames) of the last segment yielded

    def close(group: list[Region], next_start: float) -> Iterator[tuple[float, float]]:
        nonlocal previous_end
        if sum(r.end - r.start for r in group) * frame_seconds < options.min_speech_seconds:
            return
        start = max(0.0, group[0].start - pad, (previous_end + group[0].start) / 2)
        end = min(group[-1].end + pad, (group[-1].end + next_start) / 2)
        previous_end = group[-1].end
        yield start * frame_seconds, end * frame_seconds

    group: list[Region] = []
    for region in regions:
        if group and region.start - group[-1].end >= min_pause:
            yield from close(group, region.start)
            group = []
        group.append(region)
        while group[-1].end - group[0].start > max_length:  # too long: cut at the longest pause
            pauses = [b.start - a.end for a, b in zip(group, group[1:])]
            cut = int(np.argmax(pauses)) + 1
            yield from close(group[:cut], group[cut].start)
            group = group[cut:]
    if group:
        yield from close(group, np.inf)


def speech_segments(blocks: Iterable[np.ndarray], vad: SileroVAD, options: SegmentOptions
                    ) -> Iterator[tuple[float, float]]:
    """(start, end) seconds of each speech segment of the audio in `blocks` (float32 (samples,) at 16 kHz)."""
    max_frames = int(options.max_segment_seconds / vad.frame_seconds)
    regions = speech_regions(vad.probabilities(blocks), max_frames, options.vad_threshold)
    return group_regions(regions, vad.frame_seconds, options)
