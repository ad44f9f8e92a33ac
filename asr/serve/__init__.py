"""`asr serve`: an HTTP API and a web page to try a model, on FastAPI + uvicorn.

    asr serve [--model CKPT] [--host 127.0.0.1] [--port 8000] [--workers N] [--queue-size N] ...

    POST /v1/audio/transcriptions   multipart `file` (+ `response_format`: json | text | srt | vtt |
                                    verbose_json); the request and response shapes of OpenAI's API
    GET  /v1/models                 the loaded model: card summary, architecture, decoding settings
    GET  /healthz                   liveness, queue occupancy and limits
    GET  /                          the page (asr/serve/static/index.html): drop a file or record

The package is split so that each part can be read (and tested) alone:
    recognizer.py  the model and its decoders; `Recognizer.transcribe` is the one call into
                   the transcription library (asr.transcribe)
    scheduler.py   bounded admission, the FIFO queue, the worker pool and batching
    adaptation.py  the served and adapted models by id, and the one adaptation job at a time
    limits.py      what slow or hostile clients meet: upload slots and deadline, header
                   deadline, JSON answers to every request in flight at shutdown
    app.py         the FastAPI application: routes, multipart parsing, limits, JSON errors;
                   `serve` runs it with uvicorn
The five response formats of a transcript are asr.writers' (shared with `asr transcribe`).
This __init__ holds the settings (`ServeConfig`) and the listening socket (`listen`).

Only app.py and limits.py import FastAPI / uvicorn (the optional `serve` extra, asr.extras), so
the rest of the toolkit never needs them; `require_extra` says in one line what to install
when they are missing.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass
from pathlib import Path

from asr.config import option
from asr.errors import AsrError
from asr.extras import require

EXTRA_MODULES = ("fastapi", "uvicorn", "python_multipart")  # what `pip install 'asr[serve]'` brings


class ServeError(AsrError):
    """The server cannot start: a port in use, bad settings."""


@dataclass(frozen=True)
class ServeConfig:
    """Pool sizes and limits of the server. Frozen: build a new one to change it."""

    workers: int = option(0, "model worker threads; 0: one per core")
    queue_size: int = option(32, "requests in the transcription queue at once (their upload complete, waiting or "
                                 "running); more get 503")
    max_batch: int = option(4, "short requests waiting at the same time go through the model together (1: never)")
    max_upload_mb: float = option(25.0, "largest upload, in MB (OpenAI's limit); larger ones get 413")
    max_audio_seconds: float = option(600.0, "longest audio; longer gets 413")
    min_audio_seconds: float = option(0.05, "shortest audio; shorter gets 400 (under one feature frame)")
    models_dir: str = option("", "where adapted models are kept (POST /v1/adaptations); \"\": ~/.cache/asr/adapted")
    max_adapt_upload_mb: float = option(100.0, "largest adaptation upload (all recordings together), in MB")
    max_adapt_minutes: float = option(10.0, "wall-time bound of one adaptation job (training gets 80% of it)")
    max_adapt_prompts: int = option(200, "most recordings in one adaptation upload")
    # Slow clients: what one connection may hold, and for how long (docs/serving.md, "Security").
    max_uploads: int = option(256, "request bodies arriving at once (uploads in progress); more get 503")
    upload_grace_s: float = option(10.0, "seconds an upload may lag behind --min-upload-kbps before it gets 408")
    min_upload_kbps: float = option(128.0, "slowest upload kept, in kilobits per second (a 25 MB file: 26 "
                                           "minutes); slower gets 408 and the connection closed")
    header_timeout_s: float = option(10.0, "seconds a connection has to send a request's headers (from its "
                                           "opening or the previous answer); then it is closed")
    keep_alive_s: float = option(5.0, "seconds an idle connection stays open after an answer")

    def __post_init__(self):
        if self.workers == 0:
            from asr.threads import usable_cores  # imports torch: only when a config is built

            object.__setattr__(self, "workers", usable_cores())
        if self.workers < 1 or self.queue_size < 1 or self.max_batch < 1:
            raise ServeError("--workers must not be negative (0: one per core), --queue-size and --max-batch "
                             "must be at least 1")
        if self.max_adapt_upload_mb <= 0 or self.max_adapt_minutes <= 0 or self.max_adapt_prompts < 1:
            raise ServeError("--max-adapt-upload-mb, --max-adapt-minutes and --max-adapt-prompts must be positive")
        if self.max_uploads < 1 or not all(0 < value < math.inf for value in (
                self.upload_grace_s, self.min_upload_kbps, self.header_timeout_s, self.keep_alive_s)):
            raise ServeError("--max-uploads must be at least 1; --upload-grace-s, --min-upload-kbps, "
                             "--header-timeout-s and --keep-alive-s must be positive")
        if not (0 < self.max_upload_mb < math.inf and 0 < self.min_audio_seconds < self.max_audio_seconds < math.inf):
            raise ServeError("--max-upload-mb must be positive and --max-audio-seconds above --min-audio-seconds")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)

    @property
    def min_upload_bytes_per_s(self) -> float:
        return self.min_upload_kbps * 1000 / 8

    @property
    def max_adapt_upload_bytes(self) -> int:
        return int(self.max_adapt_upload_mb * 1_000_000)

    @property
    def adapted_models_dir(self) -> Path:
        return Path(self.models_dir).expanduser() if self.models_dir else Path.home() / ".cache" / "asr" / "adapted"


def require_extra() -> None:
    """Raise MissingExtraError naming `asr[serve]` if FastAPI, uvicorn or python-multipart is missing."""
    for module in EXTRA_MODULES:
        require(module, "'asr[serve]'", "asr serve")


def listen(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A listening TCP socket on host:port (0: any free port), or ServeError in one line.

    Bound before the model loads, so that a port in use fails at once, and bound here rather
    than by uvicorn, so that the printed URL carries the real port and can be used at once:
    connections wait in the backlog until the app has started.
    """
    if not 0 <= port <= 65535:
        raise ServeError(f"--port must be 0..65535 (0: any free one), got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as err:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port} ({err.strerror})") from None
    return sock
