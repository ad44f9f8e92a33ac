"""Reading audio: any file soundfile can decode becomes 16 kHz mono float32.

`load_audio` is the single entry point for audio in the toolkit (training data,
evaluation and transcription all go through it); `stream_audio` reads a long file
block by block for voice-activity detection. Every way a file can be unusable
(missing, empty, not audio, corrupt, zero samples) raises `AudioError`, whose
message names the file, so callers can report one line and carry on.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
from collections.abc import Iterator

import numpy as np
import soundfile as sf

from asr.errors import AsrError

SAMPLE_RATE = 16000  # Hz; every model in the toolkit works at this rate
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3")  # what folder inputs are searched for

# libsndfile accepts a WAV whose data chunk is shorter than its header says and
# just returns fewer samples; its log then reads "data : 32000 (should be 956)".
_SHORT_DATA_CHUNK = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_STREAMING_SIZES = (0, 0xFFFFFFFF)  # sizes written by recorders that never finalize the header
UNKNOWN_FRAMES = 2**63 - 1  # libsndfile's length of a file whose header states none (e.g. a streamed FLAC)


class AudioError(AsrError):
    """An audio file that cannot be used. The message starts with the file's path."""

    def __init__(self, path: str | os.PathLike, reason: str | None = None):
        if reason is None:
            # Rebuilt from its message alone, as pickle does, and as torch's DataLoader does
            # with a worker's error (the message then ends "...AudioError: PATH: REASON" after
            # the worker's traceback): keep that last line, so the CLI still prints one line.
            last_line = str(path).rstrip().splitlines()[-1]
            path, _, reason = last_line.split("AudioError: ", 1)[-1].partition(": ")
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def audio_info(path: str | os.PathLike) -> tuple[float, int, int]:
    """Return (duration in seconds, sample rate, channels) without decoding the samples."""
    info = _header(path)
    return info.frames / info.samplerate, info.samplerate, info.channels


def audio_seconds(path: str | os.PathLike, limit: float = math.inf,
                  decoded_copy: str | os.PathLike | None = None) -> float:
    """Duration of `path` in seconds, from its header. When the header states no length (a streamed
    FLAC), the file is decoded block by block, samples dropped, up to `limit` seconds: a longer one
    returns math.inf, so hours in a small compressed file are never all decoded. Within the limit,
    the samples also go to `decoded_copy` if given: a 16-bit WAV (same rate and channels) that states
    its length, for the readers above, which read a file up to the length its header states."""
    info = _header(path)
    if info.frames != UNKNOWN_FRAMES:
        return info.frames / info.samplerate
    frames = 0
    try:
        with sf.SoundFile(str(path)) as f, (
                sf.SoundFile(str(decoded_copy), "w", f.samplerate, f.channels, "PCM_16", format="WAV")
                if decoded_copy else contextlib.nullcontext()) as copy:
            for block in _unstated_blocks(f):
                frames += len(block)
                if frames > limit * f.samplerate:
                    break
                if copy is not None:
                    copy.write(block)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(path, f"not a readable audio file ({_short(err)})") from None
    if frames > limit * info.samplerate:
        if decoded_copy:
            os.unlink(decoded_copy)
        return math.inf
    if frames == 0:
        raise AudioError(path, "contains no audio samples")
    return frames / info.samplerate


def _unstated_blocks(f: sf.SoundFile) -> Iterator[np.ndarray]:
    """float32 `(frames, channels)` blocks of one second of an open file whose header states no
    length, to its end. libsndfile reports that end as an error ("psf_fseek() failed") after filling
    part of the buffer: the buffer is filled with NaN first, so the decoded part is its finite
    beginning (decoded samples are finite)."""
    block = np.empty((f.samplerate, f.channels), dtype=np.float32)
    while True:
        block.fill(np.nan)
        try:
            got = len(f.read(out=block))
        except sf.LibsndfileError:
            finite = np.isfinite(block[:, 0])
            got = len(block) if finite.all() else int(finite.argmin())
            if got:
                yield block[:got]
            return
        if got:
            yield block[:got]
        if got < len(block):
            return


def _header(path: str | os.PathLike):
    """soundfile's info of a usable file (frames > 0), or AudioError."""
    _check_file(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(path, f"not a readable audio file ({_short(err)})") from None
    _check_complete(path, info.extra_info)
    if info.frames <= 0:
        raise AudioError(path, "contains no audio samples")
    return info


def load_audio(
    path: str | os.PathLike, offset: float = 0.0, duration: float | None = None
) -> np.ndarray:
    """Decode `path` (or the span [offset, offset + duration) seconds of it).

    Returns float32 samples `(samples,)` at SAMPLE_RATE, channels averaged to mono.
    Raises AudioError for anything that is not usable audio.
    """
    _check_file(path)
    try:
        with sf.SoundFile(str(path)) as f:
            _check_complete(path, f.extra_info)
            rate = f.samplerate
            start = int(round(offset * rate))
            if start:
                f.seek(min(start, f.frames))
            frames = -1 if duration is None else int(round(duration * rate))
            data = f.read(frames, dtype="float32", always_2d=True)  # (samples, channels)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(path, f"not a readable audio file ({_short(err)})") from None
    if data.shape[0] == 0:
        where = f" at offset {offset:.2f}s" if offset else ""
        raise AudioError(path, f"contains no audio samples{where}")
    if not np.isfinite(data).all():
        raise AudioError(path, "decoded samples contain NaN or infinity (corrupt file?)")
    mono = data.mean(axis=1)  # (samples,)
    return resample(mono, rate)


def stream_audio(path: str | os.PathLike, block_seconds: float = 30.0) -> Iterator[np.ndarray]:
    """Decode `path` block by block: float32 `(samples,)` blocks of `block_seconds` (the last one
    shorter) at SAMPLE_RATE, mono, so that a long file never sits in memory whole. Each block is
    resampled on its own (fine for voice-activity detection; `load_audio` a span for recognition).
    Raises AudioError like `load_audio`."""
    _check_file(path)
    try:
        with sf.SoundFile(str(path)) as f:
            _check_complete(path, f.extra_info)
            for block in f.blocks(blocksize=int(block_seconds * f.samplerate), dtype="float32", always_2d=True):
                if not np.isfinite(block).all():
                    raise AudioError(path, "decoded samples contain NaN or infinity (corrupt file?)")
                yield resample(block.mean(axis=1), f.samplerate)  # (samples,)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(path, f"not a readable audio file ({_short(err)})") from None


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    """Resample mono float32 `(samples,)` from `rate` to SAMPLE_RATE (band-limited sinc)."""
    if rate == SAMPLE_RATE:
        return np.ascontiguousarray(samples, dtype=np.float32)
    import torch  # here, not at the top: `asr --help` imports this module and must not wait for torch
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(np.ascontiguousarray(samples)), rate, SAMPLE_RATE)
    return out.numpy().astype(np.float32, copy=False)


def _check_file(path: str | os.PathLike) -> None:
    """AudioError, in words a user can act on, for a path that is no readable regular file."""
    try:
        info = os.stat(path)
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        if os.path.islink(path):
            raise AudioError(path, f"a broken symbolic link (to {os.readlink(path)})") from None
        raise AudioError(path, "file not found") from None
    except PermissionError:
        raise AudioError(path, "permission denied: cannot read it") from None
    except IsADirectoryError:
        raise AudioError(path, "is a directory, not an audio file") from None
    except ValueError:  # os.stat: "embedded null byte"
        raise AudioError(repr(str(path)), "a file name cannot hold a NUL byte") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise AudioError(path, "a symbolic link loop (it points back to itself)") from None
        raise AudioError(path, f"cannot read it ({err.strerror})") from None
    if info.st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)")


def _check_complete(path: str | os.PathLike, log: str) -> None:
    """Reject a WAV cut short (e.g. an interrupted copy): its header promises more data than it holds."""
    match = _SHORT_DATA_CHUNK.search(log or "")
    if match:
        declared, present = int(match.group(1)), int(match.group(2))
        if declared > present and declared not in _STREAMING_SIZES:
            raise AudioError(path, f"truncated: header declares {declared} bytes of audio, file holds {present}")


def _short(err: Exception) -> str:
    """libsndfile messages repeat the path and span lines; keep only the reason. Its "File does not
    exist or is not a regular file (possibly a pipe?)" is what it says of any format it cannot
    recognize, once the file is known to exist (`_check_file`): say that instead."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    if "possibly a pipe" in text or "Format not recognised" in text:
        return f"unknown or corrupt format; expected one of {', '.join(e[1:] for e in AUDIO_EXTENSIONS)}"
    return text.split(": ", 1)[-1] if "Error opening" in text else text
