"""The FastAPI application of `asr serve`: routes, upload handling, limits and JSON errors.

    app = create_app(Recognizer(loaded, decoding, workers=2), ServeConfig())
    # serve(recognizer, config, listen(host, port)) runs it with uvicorn;
    # fastapi.testclient.TestClient(app) tests it

Every failure is a JSON body in OpenAI's error shape, never a traceback:
    {"error": {"message": "...", "type": "invalid_request_error", "param": "file", "code": "invalid_audio"}}
    400  no `file` field, a text `file`, an unknown field, a bad response_format or language,
         an empty, non-audio, truncated or too short file, a malformed multipart body
    404 / 405  unknown route or method
    408  an upload slower than --min-upload-kbps (after --upload-grace-s): asr.serve.limits
    413  a body over max_upload_bytes (refused from its Content-Length, or cut off while it
         streams in) or audio over max_audio_seconds
    415  a body that is not multipart/form-data
    503  every upload slot or queue slot taken (asr.serve.limits, asr.serve.scheduler), with
         Retry-After; or the server is stopping (code "server_shutting_down")
    500  a bug: logged on the server with its traceback; the client gets one line
An answer given before the whole body has arrived closes the connection (Connection: close).

Uploads: a transcription request enters the queue once its body has arrived. It then gets a
folder of its own under the server's temporary folder (made at start-up, removed at shutdown);
the file is saved there, transcribed, and the folder is deleted when the answer is ready,
whatever happened. Starlette spools the multipart body to an anonymous temporary file, which
is gone once closed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import shutil
import socket
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect

from asr import __version__
from asr.adapt.data import MIN_SECONDS, check_data, read_data
from asr.audio import AUDIO_EXTENSIONS, AudioError, audio_seconds
from asr.data.manifest import Utterance
from asr.errors import AsrError
from asr.serve import ServeConfig
from asr.serve.adaptation import ADAPTED_PREFIX, AdaptationBusy, Adaptations, Models
from asr.serve.limits import SHUTTING_DOWN, Guard, Server, UploadGuard, UploadRefused, error_body, h11_protocol
from asr.serve.recognizer import Recognizer
from asr.serve.scheduler import Scheduler
from asr.text import CharTokenizer
from asr.writers import API_FORMATS, response

PAGE = Path(__file__).resolve().parent / "static" / "index.html"
ADAPT_PAGE = PAGE.with_name("adapt.html")
PROMPTS = PAGE.with_name("prompts.txt")  # CC0 sentences the adaptation page asks people to read
ADAPT_PATH = "/v1/adaptations"
ADAPT_STOP_SECONDS = 30.0  # how long a stopping server waits for a running adaptation to save its model
ADAPT_UPLOADS = 2  # adaptation uploads (up to max_adapt_upload_mb each) read at once: one job runs at a time
FORM_OVERHEAD_BYTES = 65_536  # multipart boundaries, headers and the small fields, beyond the file itself
# Fields of OpenAI's transcription request. Only `file` and `response_format` change our answer;
# `model` (the server has one), `prompt`, `temperature` and `timestamp_granularities[]` are accepted
# and ignored (verbose_json always has segments and words), so existing clients work unchanged.
FIELDS = ("file", "model", "language", "prompt", "response_format", "temperature", "timestamp_granularities[]",
          "stream", "chunking_strategy", "include[]")
ENGLISH = ("en", "eng", "english")
# The page loads nothing from elsewhere; its recorder runs as an AudioWorklet made from a blob: URL.
PAGE_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline' blob:; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'none'")


class ApiError(Exception):
    """A request the server refuses; becomes a JSON error response."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.headers = status, message, code, param, headers


def too_large_message(max_bytes: int, adapting: bool = False) -> str:
    if adapting:
        return (f"upload too large: this server takes adaptation recordings up to {max_bytes / 1e6:g} MB "
                f"in all (--max-adapt-upload-mb)")
    return f"upload too large: this server takes files up to {max_bytes / 1e6:g} MB (--max-upload-mb)"


def error_response(status: int, message: str, code: str, param: str | None = None,
                   headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, code, param), status_code=status, headers=headers)


class BodyLimit:
    """ASGI middleware: refuse a body over `max_bytes` from its Content-Length before reading it,
    and stop reading one that streams past it (chunked, or a lying Content-Length). Adaptation
    uploads (ADAPT_PATH, many recordings) have limits of their own: `adapt_bytes`, `adapt_upload_bytes`."""

    def __init__(self, app, max_bytes: int, upload_bytes: int, adapt_bytes: int = 0, adapt_upload_bytes: int = 0):
        self.app, self.max_bytes, self.upload_bytes = app, max_bytes, upload_bytes
        self.adapt_bytes, self.adapt_upload_bytes = adapt_bytes or max_bytes, adapt_upload_bytes or upload_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        adapting = scope["path"] == ADAPT_PATH
        max_bytes = self.adapt_bytes if adapting else self.max_bytes
        length = dict(scope["headers"]).get(b"content-length", b"")
        refusal = too_large_message(self.adapt_upload_bytes if adapting else self.upload_bytes, adapting)
        if length.isdigit() and int(length) > max_bytes:
            return await error_response(413, refusal, "file_too_large", "file")(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:  # answered by UploadGuard, around this middleware
                    raise UploadRefused(413, refusal, "file_too_large", "file")
            return message

        await self.app(scope, limited_receive, send)


def create_app(recognizer: Recognizer, config: ServeConfig | None = None) -> FastAPI:
    config = config or ServeConfig()
    scheduler = Scheduler(recognizer, config)
    models = Models(recognizer, config.adapted_models_dir, config.workers)
    adaptations = Adaptations(models, config)
    guard = Guard(config.max_uploads)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        guard.stopping = asyncio.Event()  # in the server's event loop
        app.state.work_dir = Path(tempfile.mkdtemp(prefix="asr-serve-"))
        await scheduler.start()
        try:
            yield
        except asyncio.CancelledError:  # a forced stop (a second Ctrl-C): uvicorn skips this shutdown, then
            pass  # cancels it; it still runs, quietly (uvicorn would log the cancellation's traceback)
        finally:
            await scheduler.stop()
            await run_in_threadpool(adaptations.close, ADAPT_STOP_SECONDS)
            shutil.rmtree(app.state.work_dir, ignore_errors=True)

    # The interactive /docs pages load their scripts from a CDN: off. /openapi.json stays.
    app = FastAPI(title="asr serve", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.scheduler = scheduler
    app.state.adaptations = adaptations
    app.state.guard = guard
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes + FORM_OVERHEAD_BYTES,
                       upload_bytes=config.max_upload_bytes,
                       adapt_bytes=config.max_adapt_upload_bytes + FORM_OVERHEAD_BYTES * 4,
                       adapt_upload_bytes=config.max_adapt_upload_bytes)
    app.add_middleware(UploadGuard, config=config, guard=guard)  # added last: around BodyLimit
    _add_error_handlers(app, config)
    _add_pages(app, recognizer, scheduler, guard, config)
    _add_models(app, models)
    _add_adaptations(app, adaptations, config)
    _add_transcriptions(app, scheduler, models, config)
    return app


def _add_error_handlers(app: FastAPI, config: ServeConfig) -> None:
    """Every failure as a JSON body in OpenAI's error shape (see the module docstring)."""

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, err: ApiError):
        return error_response(err.status, err.message, err.code, err.param, err.headers)

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, err: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        return error_response(err.status_code, str(err.detail), code, headers=getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        return error_response(400, f"{'.'.join(map(str, first.get('loc', [])))}: {first.get('msg', 'invalid')}",
                              "invalid_request")

    @app.exception_handler(Exception)
    async def on_bug(request: Request, err: Exception):  # the server (uvicorn) logs the traceback
        return error_response(500, f"internal error ({type(err).__name__}); the server logged it", "internal_error")


def _add_pages(app: FastAPI, recognizer: Recognizer, scheduler: Scheduler, guard: Guard, config: ServeConfig) -> None:
    """The web page, the adaptation page and its prompts, and /healthz."""
    page = PAGE.read_text(encoding="utf-8")
    adapt_page = ADAPT_PAGE.read_text(encoding="utf-8")
    prompts = [line.strip() for line in PROMPTS.read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")]

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache"})

    limits = {"max_upload_bytes": config.max_upload_bytes, "max_audio_seconds": config.max_audio_seconds,
              "min_audio_seconds": config.min_audio_seconds, "max_uploads": config.max_uploads,
              "queue_size": config.queue_size, "upload_grace_s": config.upload_grace_s,
              "min_upload_kbps": config.min_upload_kbps, "header_timeout_s": config.header_timeout_s,
              "keep_alive_s": config.keep_alive_s, "max_adapt_upload_bytes": config.max_adapt_upload_bytes,
              "max_adapt_prompts": config.max_adapt_prompts, "max_adapt_minutes": config.max_adapt_minutes}

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "model": recognizer.model_id, "workers": config.workers,
                "requests": {"uploading": guard.uploading, "upload_limit": config.max_uploads,
                             "admitted": scheduler.admitted, "waiting": scheduler.waiting,
                             "running": scheduler.running, "limit": config.queue_size},
                "limits": limits}

    @app.get("/adapt", response_class=HTMLResponse, include_in_schema=False)
    async def adapt_index():
        return HTMLResponse(adapt_page, headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache"})

    @app.get("/adapt/prompts")
    async def adapt_prompts():
        """The sentences the adaptation page asks people to read (CC0: asr/serve/static/prompts.txt)."""
        return {"prompts": prompts, "min_seconds": MIN_SECONDS}


def _add_models(app: FastAPI, models: Models) -> None:
    """GET /v1/models and /v1/models/{id}: the served model and the adapted ones."""

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": await run_in_threadpool(models.describe)}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        found = await run_in_threadpool(models.get, model_id)
        if found is None:
            known = ", ".join([models.default.model_id, *models.adapted_ids()])
            raise ApiError(404, f"model {model_id!r} not found; this server has {known}", "model_not_found", "model")
        return found.describe()


def _add_adaptations(app: FastAPI, adaptations: Adaptations, config: ServeConfig) -> None:
    """POST /v1/adaptations (one job at a time), GET and DELETE /v1/adaptations/{id}."""

    uploading = 0  # adaptation uploads being read and saved (ADAPT_UPLOADS at most)

    @app.post(ADAPT_PATH, status_code=202, openapi_extra=_OPENAPI_ADAPT)
    async def start_adaptation(request: Request):
        nonlocal uploading
        if adaptations.running is not None or uploading >= ADAPT_UPLOADS:
            running = adaptations.running is not None
            wait = adaptations.retry_after() if running else max(1, math.ceil(config.upload_grace_s))
            what = "an adaptation is running" if running else "adaptations are uploading"
            raise ApiError(429, f"{what} (one job at a time); retry in {wait} s", "adaptation_busy",
                           headers={"Retry-After": str(wait)})
        uploading += 1
        folder = Path(tempfile.mkdtemp(prefix="adapt-", dir=request.app.state.work_dir))
        try:
            try:
                test, steps = await _receive_recordings(request, folder, config)
            finally:
                uploading -= 1
            try:
                job = adaptations.submit(folder, test, steps)
            except AdaptationBusy as err:
                raise ApiError(429, str(err), "adaptation_busy",
                               headers={"Retry-After": str(err.retry_after)}) from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return JSONResponse(job.view(), status_code=202, headers={"Location": f"{ADAPT_PATH}/{job.id}"})

    def _job(job_id: str):
        job = adaptations.jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"adaptation {job_id!r} not found", "adaptation_not_found")
        return job

    @app.get(ADAPT_PATH + "/{job_id}")
    async def adaptation(job_id: str):
        return _job(job_id).view()

    @app.delete(ADAPT_PATH + "/{job_id}")
    async def stop_adaptation(job_id: str):
        job = _job(job_id)
        adaptations.cancel(job)
        return job.view()


def _add_transcriptions(app: FastAPI, scheduler: Scheduler, models: Models, config: ServeConfig) -> None:
    """POST /v1/audio/transcriptions: admit, save the upload, check it, transcribe it, answer in its format."""

    @app.post("/v1/audio/transcriptions", openapi_extra=_OPENAPI_UPLOAD)
    async def transcriptions(request: Request):
        if scheduler.admitted >= config.queue_size:  # full now: refuse before reading the upload
            raise _busy(scheduler, config)
        # Bounds on the parts (the body's size and pace: BodyLimit, UploadGuard); _read_fields says what is wrong.
        form = await _read_form(request, len(FIELDS), len(FIELDS),
                                "send the audio as multipart/form-data, in the field 'file'")
        if not scheduler.try_admit():  # the upload has arrived: only now does it take a place in the queue
            await form.close()
            raise _busy(scheduler, config)
        folder = Path(tempfile.mkdtemp(dir=request.app.state.work_dir))
        try:
            return await _transcribe(request, form, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            scheduler.release()

    async def _transcribe(request: Request, form, folder: Path) -> Response:
        try:
            upload, fmt = _read_fields(form)
            chosen = await run_in_threadpool(_chosen_model, models, form.get("model"))
            name = Path(upload.filename or "upload").name[:200] or "upload"
            path = folder / "audio"
            await run_in_threadpool(_save, upload, path, config.max_upload_bytes)
        finally:
            await form.close()
        seconds, path = await run_in_threadpool(_check_audio, path, name, config)
        try:
            result = await _unless_client_leaves(request, scheduler.transcribe(path, seconds, chosen),
                                                 request.app.state.guard.stopping)
        except AudioError as err:  # readable header, unreadable samples (e.g. a garbled Ogg body)
            raise ApiError(400, f"{name}: {err.reason}", "invalid_audio", "file") from None
        if result is None:
            return Response(status_code=400)  # the client has gone; this is never sent
        body, media_type = response(result, fmt, seconds, chosen.loaded.tokenizer)
        return JSONResponse(body) if isinstance(body, dict) else Response(body, media_type=media_type)


def _busy(scheduler: Scheduler, config: ServeConfig) -> ApiError:
    wait = scheduler.retry_after()
    return ApiError(503, f"server busy: {config.queue_size} requests in the queue; retry in {wait} s",
                    "server_busy", headers={"Retry-After": str(wait)})


async def _read_form(request: Request, max_files: int, max_fields: int, how: str):
    """The multipart form of `request` (Starlette's FormData, files spooled to temporary files), or
    ApiError: 415 not multipart (`how` says what to send), 400 malformed or too many parts."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(415, how, "unsupported_media_type")
    try:
        return await request.form(max_files=max_files, max_fields=max_fields)
    except (MultiPartException, HTTPException) as err:  # Starlette turns the first into the second
        reason = err.message if isinstance(err, MultiPartException) else err.detail
        raise ApiError(400, f"malformed multipart body: {reason}", "invalid_multipart") from None
    except ClientDisconnect:  # gone while uploading: this answer reaches nobody
        raise ApiError(400, "the client left during its upload", "client_disconnected") from None


def _chosen_model(models: Models, model_id) -> Recognizer:
    """The model `model=` asks for. An adapted model's id ("adapted/NAME") must exist (else 404);
    any other name (an OpenAI client's "whisper-1") gets the served model, so such clients work."""
    if not isinstance(model_id, str) or not model_id.startswith(ADAPTED_PREFIX):
        return models.default
    found = models.get(model_id)
    if found is None:
        known = ", ".join([models.default.model_id, *models.adapted_ids()])
        raise ApiError(404, f"model {model_id!r} not found; this server has {known}", "model_not_found", "model")
    return found


async def _receive_recordings(request: Request, folder: Path, config: ServeConfig) -> tuple[list[Utterance], int]:
    """Read an adaptation upload and save it under `folder` (_save_recordings)."""
    limit = config.max_adapt_prompts
    form = await _read_form(request, limit, 2 * limit + 4, "send the recordings as multipart/form-data: fields "
                                                            "'file' and 'text', one pair per prompt")
    try:
        return await run_in_threadpool(_save_recordings, form, folder, config)
    finally:
        await form.close()


def _save_recordings(form, folder: Path, config: ServeConfig) -> tuple[list[Utterance], int]:
    """Save an adaptation upload as `folder`/train/NNN.EXT + NNN.txt (DATA for asr.adapt) and its last
    `test` pairs under `folder`/test/. Returns (the test prompts as utterances, the step budget asked
    for: 0 = the default). ApiError 400 for anything asr.adapt would refuse, in one line."""
    unknown = [key for key in form.keys() if key not in ADAPT_FIELDS]
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r} (this endpoint takes: {', '.join(ADAPT_FIELDS)})",
                       "unknown_field", unknown[0])
    files, texts = form.getlist("file"), form.getlist("text")
    if any(not isinstance(f, UploadFile) for f in files) or any(isinstance(t, UploadFile) for t in texts):
        raise ApiError(400, "each 'file' must be a file upload and each 'text' its transcript (text)", "invalid_field")
    if len(files) != len(texts):
        raise ApiError(400, f"{len(files)} 'file' fields but {len(texts)} 'text' fields: send one transcript "
                            f"per recording, in the same order", "invalid_field", "text")
    test_count = _int_field(form, "test", 0, 0, len(files))
    steps = _int_field(form, "steps", 0, 0, 10_000)
    total = 0
    utterances = []
    for i, (upload, text) in enumerate(zip(files, texts)):
        part = "test" if i >= len(files) - test_count else "train"
        suffix = Path(upload.filename or "").suffix.lower()
        stem = folder / part / f"{i:03d}"
        stem.parent.mkdir(exist_ok=True)
        path = stem.with_suffix(suffix if suffix in AUDIO_EXTENSIONS else ".wav")
        _save(upload, path, config.max_adapt_upload_bytes)
        total += path.stat().st_size
        if total > config.max_adapt_upload_bytes:
            raise ApiError(413, too_large_message(config.max_adapt_upload_bytes, True), "file_too_large", "file")
        name = Path(upload.filename or f"recording {i + 1}").name[:200]
        seconds, usable = _check_audio(path, name, config)
        if usable != path:  # decoded from a file that stated no length: keep the decoded WAV alone
            path.unlink()
            path = usable.rename(stem.with_suffix(".wav"))
        stem.with_suffix(".txt").write_text(text, encoding="utf-8")
        utterances.append(Utterance(f"{i:03d}", str(path), seconds, text, "you"))
    try:
        data = read_data(folder / "train")
        check_data(data, CharTokenizer())
    except AsrError as err:
        raise ApiError(400, str(err).replace(str(folder) + "/", ""), "invalid_adaptation_data") from None
    return utterances[len(utterances) - test_count:], steps


def _int_field(form, name: str, default: int, low: int, high: int) -> int:
    value = form.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = low - 1
    if not low <= number <= high:
        raise ApiError(400, f"{name!r} must be a whole number from {low} to {high}, got {value!r}",
                       "invalid_field", name)
    return number


def _read_fields(form) -> tuple[UploadFile, str]:
    """The upload and the response format, or ApiError naming the field that is wrong."""
    upload = form.get("file")
    if upload is None:
        got = ", ".join(repr(key) for key in form.keys()) or "no fields"
        raise ApiError(400, f"missing the multipart field 'file' with the audio (got {got})", "missing_file", "file")
    if not isinstance(upload, UploadFile):
        raise ApiError(400, "the field 'file' must be a file upload, not text", "invalid_file", "file")
    if len(form.getlist("file")) > 1:
        raise ApiError(400, "one file per request: the field 'file' came more than once", "invalid_file", "file")
    unknown = [key for key in form.keys() if key not in FIELDS]
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r} (this endpoint takes: {', '.join(FIELDS)})",
                       "unknown_field", unknown[0])
    files = [key for key, value in form.multi_items() if key != "file" and isinstance(value, UploadFile)]
    if files:
        raise ApiError(400, f"the field {files[0]!r} must be text, not a file", "invalid_field", files[0])
    fmt = form.get("response_format") or "json"
    if fmt not in API_FORMATS:
        raise ApiError(400, f"response_format {fmt!r} is not one of: {', '.join(API_FORMATS)}",
                       "invalid_response_format", "response_format")
    language = form.get("language")
    if language and language.strip().lower() not in ENGLISH:
        raise ApiError(400, f"language {language!r}: this model transcribes English ('en') only",
                       "unsupported_language", "language")
    if str(form.get("stream", "false")).lower() == "true":
        raise ApiError(400, "streaming responses are not supported; leave 'stream' out", "unsupported_stream", "stream")
    return upload, fmt


def _save(upload: UploadFile, path: Path, max_bytes: int) -> None:
    """Copy the spooled upload to `path`; 413 if the file alone is over the limit."""
    upload.file.seek(0)
    with open(path, "wb") as out:
        shutil.copyfileobj(upload.file, out, 1 << 20)
        if out.tell() > max_bytes:
            raise ApiError(413, too_large_message(max_bytes), "file_too_large", "file")


def _check_audio(path: Path, name: str, config: ServeConfig) -> tuple[float, Path]:
    """(Duration in seconds, the file to transcribe) of the saved upload `path`, or ApiError: not
    audio (400) or too long (413). A file whose header states no length is decoded only as far as
    max_audio_seconds, into a WAV beside it that is transcribed instead (asr.audio.audio_seconds)."""
    decoded = path.with_name(path.name + ".wav")
    try:
        seconds = audio_seconds(path, config.max_audio_seconds, decoded)
    except AudioError as err:
        raise ApiError(400, f"{name}: {err.reason}", "invalid_audio", "file") from None
    if seconds > config.max_audio_seconds:
        length = f"{seconds:.1f} s" if math.isfinite(seconds) else f"over {config.max_audio_seconds:g} s"
        raise ApiError(413, f"{name}: audio too long ({length}); this server takes up to "
                            f"{config.max_audio_seconds:g} s (--max-audio-seconds)", "audio_too_long", "file")
    if seconds < config.min_audio_seconds:
        raise ApiError(400, f"{name}: audio too short ({seconds * 1000:.0f} ms); at least "
                            f"{config.min_audio_seconds * 1000:.0f} ms", "audio_too_short", "file")
    return seconds, decoded if decoded.exists() else path


async def _unless_client_leaves(request: Request, work, stopping: asyncio.Event):
    """Await the coroutine `work`, or cancel it and return None if the client disconnects first,
    or cancel it and raise ApiError 503 if the server stops first (`stopping` is set)."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnect(request))
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({task, gone, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, gone, stop):
            pending.cancel()
    if task.done() and not task.cancelled():
        return task.result()
    if stopping.is_set():
        raise ApiError(503, SHUTTING_DOWN, "server_shutting_down", headers={"Connection": "close"})
    return None


async def _disconnect(request: Request) -> None:
    """Return when the client has closed the connection (the body has been read by then)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


ADAPT_FIELDS = ("file", "text", "test", "steps")
_OPENAPI_ADAPT = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file", "text"],
    "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                   "text": {"type": "array", "items": {"type": "string"}},
                   "test": {"type": "integer", "description": "the last N pairs: before/after test, not adapted on"},
                   "steps": {"type": "integer", "description": "training steps; 0: from the audio's length"}}}}}}}
_OPENAPI_UPLOAD = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary"},
                   "response_format": {"type": "string", "enum": list(API_FORMATS), "default": "json"},
                   "model": {"type": "string"}, "language": {"type": "string", "enum": list(ENGLISH)}}}}}}}


def serve(recognizer, config: ServeConfig, sock: socket.socket) -> None:
    """Serve `recognizer` on the socket from `listen` until interrupted; prints the URL first."""
    from asr.threads import set_threads, usable_cores

    # Each worker gets an equal share of the cores for torch's intra-op threads: several
    # workers each using every core would fight over them.
    set_threads(max(1, usable_cores() // config.workers))
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
    print(f"asr serve: {recognizer.model_id} on http://{shown}:{port}/ "
          f"({config.workers} workers, queue {config.queue_size}); adapted models in {config.adapted_models_dir}",
          flush=True)
    if not ipaddress.ip_address(host).is_loopback:
        print("asr serve: listening beyond this machine, without authentication: anyone who can reach "
              "this port can use it", flush=True)
    make_server(create_app(recognizer, config), config).run(sockets=[sock])


def make_server(app: FastAPI, config: ServeConfig) -> Server:
    """uvicorn's server for `app` (from create_app) with the connection limits of `config`: its
    `run(sockets=[sock])` serves until SIGINT or SIGTERM (or `should_exit`; tests run it in a thread)."""
    import uvicorn

    return Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5,
                                 http=h11_protocol(config.header_timeout_s), timeout_keep_alive=config.keep_alive_s),
                  app.state.guard)
