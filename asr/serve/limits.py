"""What keeps slow or hostile clients from holding `asr serve`: upload slots and an upload deadline
(the ASGI middleware `UploadGuard`), a deadline for a request's headers and closes that let the
answer arrive (`h11_protocol`: uvicorn's h11 protocol, with a timer and a lingering close), and a
stop that answers every request in flight (`Server`).

    guard = Guard(config.max_uploads)            # shared: uploads in progress, the stop signal
    app.add_middleware(UploadGuard, config=config, guard=guard)
    server = Server(uvicorn.Config(app, http=h11_protocol(config.header_timeout_s),
                                   timeout_keep_alive=config.keep_alive_s), guard)

A request with a body holds one of `max_uploads` upload slots until its body has arrived (or it
ends), so slow uploads can fill those slots but never the transcription queue (asr.serve.scheduler),
which a request enters with its upload complete. The body must keep up with
`upload_grace_s + received bytes / min_upload_kbps`, checked while waiting for each chunk: else
408 and the connection closed. An answer sent before the body has all arrived closes the
connection too (what still arrives is read for LINGER_SECONDS at most, and dropped). A multipart
body that ends before its closing boundary (a Content-Length smaller than what was sent) is a 400.

A connection must send a request's line and headers within `header_timeout_s` of its opening or
of its previous answer, else it is closed: uvicorn has no such deadline, and its keep-alive timer
(`keep_alive_s`, which closes idle connections) is disarmed by any byte, so a byte every few
seconds would otherwise hold a connection for ever.

On Ctrl-C (SIGINT) or SIGTERM, `Server` sets `guard.stopping` before uvicorn's graceful shutdown:
uploads in progress (here) and requests waiting for the model (asr.serve.app) answer 503
`server_shutting_down` at once, so uvicorn has nothing left to cancel. A request it cancels all the
same (busy in a thread past the grace period) is answered here and ends quietly: uvicorn would log
its traceback and send a plain-text 500.
"""

from __future__ import annotations

import asyncio
import json
import math
import time

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from asr.serve import ServeConfig

LINGER_SECONDS = 2.0  # how long a closed connection still reads (and drops) a body it has answered
TAIL_BYTES = 1024  # the end of a multipart body kept to find its closing boundary
CLOSE = (b"connection", b"close")
SHUTTING_DOWN = "the server is shutting down; retry later"


class Guard:
    """What the middleware, the routes and the server share: uploads in progress and the stop signal."""

    def __init__(self, max_uploads: int):
        self.max_uploads = max_uploads
        self.uploading = 0  # requests holding an upload slot
        self.stopping = asyncio.Event()  # made again by the app's lifespan, in the server's event loop


class UploadRefused(Exception):
    """Raised by a guarded `receive` (the body is refused part-way) and answered by `UploadGuard`."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


def error_body(status: int, message: str, code: str, param: str | None = None) -> dict:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


async def send_error(send, status: int, message: str, code: str, param: str | None = None,
                     headers: tuple = ()) -> None:
    """Answer with a JSON error through a raw ASGI `send` (the app's own responses use FastAPI's)."""
    body = json.dumps(error_body(status, message, code, param)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class UploadGuard:
    """ASGI middleware around the app: upload slots, the upload deadline, answers at shutdown."""

    def __init__(self, app, config: ServeConfig, guard: Guard):
        self.app, self.config, self.guard = app, config, guard

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        has_body = headers.get(b"content-length", b"0") not in (b"0", b"") or b"transfer-encoding" in headers
        if has_body and self.guard.uploading >= self.guard.max_uploads:
            wait = max(1, math.ceil(self.config.upload_grace_s))  # when a stalled upload is cut off
            return await send_error(send, 503, f"server busy: {self.guard.max_uploads} uploads in progress; retry "
                                               f"in {wait} s", "too_many_uploads",
                                    headers=((b"retry-after", str(wait).encode()), CLOSE))
        exchange = Exchange(receive, send, self.guard, self.config, headers if has_body else None)
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except UploadRefused as err:
            if not exchange.started:
                await send_error(exchange.send, err.status, err.message, err.code, err.param, (CLOSE,))
        except asyncio.CancelledError:
            if not self.guard.stopping.is_set():
                raise
            # uvicorn's grace period is over and it cancelled this request: answer if it can still
            # be answered, and end quietly (re-raised, uvicorn would log a traceback).
            if not exchange.started:
                await send_error(exchange.send, 503, SHUTTING_DOWN, "server_shutting_down", headers=(CLOSE,))
        finally:
            exchange.finish()


class Exchange:
    """One request seen by `UploadGuard`: its body's progress against the deadline, and whether the
    answer has started. `headers` None: a request without a body (it holds no upload slot)."""

    def __init__(self, receive, send, guard: Guard, config: ServeConfig, headers: dict | None):
        self._receive, self._send, self.guard = receive, send, guard
        self.grace, self.rate, self.kbps = config.upload_grace_s, config.min_upload_bytes_per_s, config.min_upload_kbps
        self.uploading = headers is not None
        self.boundary = _boundary(headers or {})
        self.started = False  # the answer has begun
        self.received = 0
        self.tail = b""
        self.start = time.monotonic()
        self._stop: asyncio.Future | None = None
        if self.uploading:
            guard.uploading += 1

    async def receive(self) -> dict:
        if not self.uploading:
            return await self._receive()
        deadline = self.start + self.grace + self.received / self.rate
        message = await self._within(deadline - time.monotonic())
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._release()
        if message["type"] == "http.request":
            body = message.get("body", b"")
            self.received += len(body)
            self.tail = (self.tail + body[-TAIL_BYTES:])[-TAIL_BYTES:]
            if not message.get("more_body", False) and self.boundary and b"--" + self.boundary + b"--" not in self.tail:
                raise UploadRefused(400, "malformed multipart body: it ends before its closing boundary (cut off, "
                                         "or a Content-Length smaller than the body)", "invalid_multipart")
        return message

    async def _within(self, seconds: float) -> dict:
        """The next message from the client, or UploadRefused: 408 after `seconds`, 503 if the server stops."""
        if self._stop is None:
            self._stop = asyncio.ensure_future(self.guard.stopping.wait())
        message = asyncio.ensure_future(self._receive())
        try:
            done, _ = await asyncio.wait({message, self._stop}, timeout=max(seconds, 0.0),
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not message.done():
                message.cancel()
        if message in done:
            return message.result()
        if self._stop in done:
            raise UploadRefused(503, SHUTTING_DOWN, "server_shutting_down")
        took = time.monotonic() - self.start
        raise UploadRefused(408, f"upload too slow: {self.received / 1e6:.2f} MB in {took:.0f} s; this server "
                                 f"needs at least {self.kbps:g} kbit/s after its first {self.grace:g} s "
                                 f"(--min-upload-kbps, --upload-grace-s)", "upload_timeout", "file")

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            headers = list(message.get("headers", []))
            # Answered before the body has all arrived: the rest will not be read, so the connection
            # cannot carry another request.
            if self.uploading and all(name.lower() != b"connection" for name, _ in headers):
                message = {**message, "headers": [*headers, CLOSE]}
        await self._send(message)

    def _release(self) -> None:
        if self.uploading:
            self.uploading = False
            self.guard.uploading -= 1

    def finish(self) -> None:
        self._release()
        if self._stop is not None:
            self._stop.cancel()


def _boundary(headers: dict) -> bytes:
    """The multipart boundary named by the Content-Type header (b"": not multipart)."""
    kind, _, params = headers.get(b"content-type", b"").partition(b";")
    if kind.strip().lower() != b"multipart/form-data":
        return b""
    for param in params.split(b";"):
        name, _, value = param.strip().partition(b"=")
        if name.lower() == b"boundary":
            return value.strip(b'"')
    return b""


def h11_protocol(header_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol (passed as uvicorn.Config(http=...)) that closes a connection which
    has not sent a whole request's line and headers `header_timeout` seconds after it opened or
    after its previous answer, and closes a connection with a body still arriving by lingering."""

    class GuardedH11Protocol(H11Protocol):
        _timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport):
            super().connection_made(LingeringTransport(transport, self))
            self._arm()

        def data_received(self, data: bytes) -> None:
            if not self.transport.lingering:  # else: the rest of a body already answered, dropped
                super().data_received(data)

        def on_response_complete(self):
            self._arm()  # before uvicorn starts a request already waiting (pipelined): that one is in time
            super().on_response_complete()

        def connection_lost(self, exc):
            if self._timer is not None:
                self._timer.cancel()
            super().connection_lost(exc)

        def _arm(self):
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_later(header_timeout, self._expire, self.cycle)

        def _expire(self, cycle):
            if self.cycle is cycle and not self.transport.is_closing():  # no request has started since
                self.transport.close()

    return GuardedH11Protocol


class LingeringTransport:
    """A connection's transport whose close(), while the client is still sending a body that has
    been answered, first ends only the server's side (the answer goes out, then FIN) and drops
    what still arrives for up to LINGER_SECONDS. Closed at once, the socket would answer the
    client's next bytes with a reset, which can destroy the answer before the client reads it
    (RFC 9112, section 9.6)."""

    def __init__(self, transport: asyncio.Transport, protocol: H11Protocol):
        self._transport, self._protocol = transport, protocol
        self.lingering = False

    def __getattr__(self, name):
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def close(self) -> None:
        if (self.lingering or self._transport.is_closing() or self._protocol.conn.their_state is not h11.SEND_BODY
                or not self._transport.can_write_eof()):
            return self._transport.close()
        self.lingering = True
        self._transport.write_eof()
        self._transport.resume_reading()
        self._protocol.loop.call_later(LINGER_SECONDS, self._transport.close)


class Server(uvicorn.Server):
    """uvicorn's server, which tells every request in flight that it stops before its graceful shutdown."""

    def __init__(self, config: uvicorn.Config, guard: Guard):
        super().__init__(config)
        self.guard = guard

    async def shutdown(self, sockets=None) -> None:
        self.guard.stopping.set()
        await super().shutdown(sockets)
