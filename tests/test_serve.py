"""asr.serve with FastAPI's test client: every endpoint and format, every bad input, the limits, 503.

The model is the bundled one with its stored decoding (beam search + word LM), so
the answers are what a user of `asr serve` gets; they are checked against the
library transcribing the same file directly. `GatedRecognizer` is the real
recognizer with a gate in front of the model, so tests can hold requests in the
queue or in a worker while they look at the server.
"""

from __future__ import annotations

import io
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="asr serve needs the serve extra: pip install -e '.[serve]'")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx (the test extra)")
import srt  # noqa: E402
import webvtt  # noqa: E402
from conftest import synthesize, tone  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from test_audio import BAD_FILES  # noqa: E402

from asr.audio import SAMPLE_RATE  # noqa: E402
from asr.checkpoint import load_model  # noqa: E402
from asr.cli import main  # noqa: E402
from asr.decode import make_decoder  # noqa: E402
from asr.pretrained import default_model_path  # noqa: E402
from asr.serve import ServeConfig  # noqa: E402
from asr.serve.app import create_app, make_server  # noqa: E402
from asr.serve.recognizer import Cancelled, Recognizer  # noqa: E402
from asr.transcribe import transcribe  # noqa: E402
from asr.writers import API_FORMATS as FORMATS  # noqa: E402

URL = "/v1/audio/transcriptions"


class GatedRecognizer(Recognizer):
    """The bundled model behind a gate: each call waits for `gate`, and its requests' folders are logged."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.gate.set()
        self.calls: list[list[str]] = []

    def transcribe(self, paths, should_stop=lambda: False):
        self.calls.append([Path(path).parent.name for path in paths])  # each request's own folder
        assert self.gate.wait(60), "test gate never opened"
        return super().transcribe(paths, should_stop)


@pytest.fixture(scope="module")
def loaded():
    return load_model(default_model_path())


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("serve")
    return [synthesize(text, folder / f"s{i}.wav") for i, text in
            enumerate(["open the window please", "the cat sat on the mat", "she sells sea shells by the sea"])]


def make_client(loaded, **config) -> TestClient:
    config = ServeConfig(**{"workers": 1, **config})
    recognizer = GatedRecognizer(loaded, loaded.decoding, workers=config.workers)
    return TestClient(create_app(recognizer, config))


def post(client, data: bytes | Path, name: str = "audio.wav", field: str = "file", **fields):
    content = data.read_bytes() if isinstance(data, Path) else data
    return client.post(URL, files={field: (name, content, "audio/wav")}, data=fields)


def error_of(response, status: int, *words: str) -> dict:
    """The JSON error of `response`, checked: status, OpenAI's shape, the words its message must name."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in error["message"]
    for word in words:
        assert word in error["message"], error["message"]
    return error


def work_dir_entries(client) -> list[Path]:
    return list(client.app.state.work_dir.iterdir())


# --- endpoints and formats --------------------------------------------------------------------


def test_healthz_and_models_describe_the_loaded_model(loaded):
    with make_client(loaded, queue_size=7) as client:
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["model"] == "pretrained"
        assert health["requests"] == {"uploading": 0, "upload_limit": 256, "admitted": 0, "waiting": 0, "running": 0,
                                      "limit": 7}
        limits = health["limits"]
        assert limits["max_upload_bytes"] == 25_000_000 and limits["max_audio_seconds"] == 600.0
        assert limits["queue_size"] == 7 and limits["max_uploads"] == 256
        assert {"upload_grace_s", "min_upload_kbps", "header_timeout_s", "keep_alive_s"} <= set(limits)

        listing = client.get("/v1/models").json()
        assert listing["object"] == "list" and len(listing["data"]) == 1
        model = listing["data"][0]
        assert model["id"] == "pretrained" and model["object"] == "model"
        assert model["card"]["title"].startswith("Model card") and model["card"]["summary"]
        assert model["architecture"]["parameters"] == sum(p.numel() for p in loaded.model.parameters())
        stored = loaded.decoding
        assert model["decoding"]["decoder"] == stored.decoder
        assert model["decoding"]["lm"] == Path(stored.lm).name  # a file name, not the server's path
        assert client.get("/v1/models/pretrained").json() == model
        error_of(client.get("/v1/models/whisper-1"), 404, "whisper-1", "pretrained")


def test_page_is_self_contained(loaded):
    with make_client(loaded) as client:
        page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" in page.text and URL in page.text
    # Nothing from a CDN or anywhere else: no other origin in src, href, url(), fetch() or a module import.
    elsewhere = re.compile(r"""(?:src|href|action)\s*=\s*["']?(?:https?:)?//"""
                           r"""|(?:url|fetch|import|addModule)\(\s*[`"']?(?:https?:)?//""")
    assert not elsewhere.findall(page.text)
    assert elsewhere.findall('<script src="https://cdn.example/x.js">')  # the check can fail


def test_every_response_format_matches_the_library(loaded, speech):
    path = speech[1]
    expected = transcribe(loaded, path, make_decoder(loaded.decoding, loaded.tokenizer))
    assert expected.text, "the bundled model should hear something in synthesized speech"
    with make_client(loaded) as client:
        answers = {fmt: post(client, path, response_format=fmt) for fmt in FORMATS}
        plain = post(client, path)  # no response_format: json
        assert work_dir_entries(client) == []
    for fmt, response in answers.items():
        assert response.status_code == 200, (fmt, response.text)
    assert plain.json() == answers["json"].json() == {"text": expected.text}
    assert answers["text"].text == expected.text + "\n"

    verbose = answers["verbose_json"].json()
    assert verbose["task"] == "transcribe" and verbose["language"] == "english"
    assert verbose["duration"] == pytest.approx(sf.info(path).duration, abs=1e-3)
    assert verbose["text"] == expected.text
    assert [w["word"] for w in verbose["words"]] == expected.text.split()
    for word, mine in zip(verbose["words"], expected.words):
        assert word["start"] == pytest.approx(mine.start, abs=1e-3) and word["end"] == pytest.approx(mine.end, abs=1e-3)
        assert 0.0 <= word["confidence"] <= 1.0
    assert " ".join(s["text"] for s in verbose["segments"]) == expected.text
    assert [s["id"] for s in verbose["segments"]] == list(range(len(verbose["segments"])))

    subtitles = list(srt.parse(answers["srt"].text))
    assert [(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in subtitles] == \
        [(s["start"], s["end"], s["text"]) for s in verbose["segments"]]
    assert answers["vtt"].headers["content-type"].startswith("text/vtt")
    captions = webvtt.from_buffer(io.StringIO(answers["vtt"].text))
    assert [c.text for c in captions] == [s["text"] for s in verbose["segments"]]


def test_openai_fields_are_accepted(loaded, speech):
    with make_client(loaded) as client:
        response = post(client, speech[0], model="whisper-1", language="en", prompt="a window", temperature="0",
                        **{"timestamp_granularities[]": "word"})
        assert response.status_code == 200, response.text
        assert response.json()["text"] == post(client, speech[0]).json()["text"]


# --- bad input: 4xx with a JSON error naming the problem, and the server goes on ------------------


UPLOAD_CASES = {name: case for name, case in BAD_FILES.items() if name not in ("missing", "directory")}


@pytest.mark.parametrize("case", UPLOAD_CASES, ids=list(UPLOAD_CASES))
def test_unusable_audio_is_a_400_naming_the_upload(loaded, speech, tmp_path, case):
    make, reason = UPLOAD_CASES[case]
    bad = make(tmp_path)
    with make_client(loaded) as client:
        error = error_of(post(client, bad, name="my recording.wav"), 400, "my recording.wav", reason)
        assert error["param"] == "file" and str(tmp_path) not in error["message"]
        assert post(client, speech[0]).status_code == 200  # still serving
        assert work_dir_entries(client) == []


def test_too_short_and_too_long_audio(loaded, tmp_path):
    sf.write(tmp_path / "blip.wav", tone(0.01), SAMPLE_RATE)
    sf.write(tmp_path / "long.wav", tone(3.0), SAMPLE_RATE)
    with make_client(loaded, max_audio_seconds=2.0) as client:
        error_of(post(client, tmp_path / "blip.wav"), 400, "too short", "10 ms")
        error = error_of(post(client, tmp_path / "long.wav"), 413, "too long", "3.0 s", "2 s", "--max-audio-seconds")
        assert error["code"] == "audio_too_long"
        assert work_dir_entries(client) == []


def test_wrong_fields_are_400_naming_the_field(loaded, speech):
    audio = speech[0].read_bytes()
    with make_client(loaded) as client:
        error = error_of(post(client, audio, field="audio"), 400, "'file'", "'audio'")
        assert error["code"] == "missing_file"
        error_of(client.post(URL, files={"file": (None, "hello")}), 400, "'file'", "file upload")
        error_of(client.post(URL, data={"model": "x"}, files={"other": ("a.wav", audio)}), 400, "'file'", "'other'")
        error_of(post(client, audio, colour="red"), 400, "unknown field", "'colour'")
        as_file = client.post(URL, files=[("file", ("a.wav", audio)), ("language", ("en.txt", b"en"))])
        error_of(as_file, 400, "'language'", "must be text")
        error_of(post(client, audio, response_format="xml"), 400, "'xml'", *FORMATS)
        error_of(post(client, audio, language="fr"), 400, "'fr'", "English")
        error_of(post(client, audio, stream="true"), 400, "stream")
        two = client.post(URL, files=[("file", ("a.wav", audio)), ("file", ("b.wav", audio))])
        error_of(two, 400, "one file per request")
        many = client.post(URL, files=[("file", ("a.wav", audio))] + [(f"f{i}", ("b.wav", b"x")) for i in range(20)])
        error_of(many, 400, "multipart", "files")


def test_bodies_that_are_not_multipart(loaded):
    with make_client(loaded) as client:
        error_of(client.post(URL, json={"file": "a.wav"}), 415, "multipart/form-data", "'file'")
        error_of(client.post(URL, content=b"--xyz\r\nnot a part", headers={"content-type": "multipart/form-data"}),
                 400, "multipart")
        error_of(client.get(URL), 405, "Method Not Allowed")
        error_of(client.get("/v2/nothing"), 404, "Not Found")


def test_upload_size_limit_from_header_and_while_streaming(loaded, tmp_path):
    sf.write(tmp_path / "big.wav", tone(4.0), SAMPLE_RATE)  # 128 kB of 16-bit samples
    data = (tmp_path / "big.wav").read_bytes()
    with make_client(loaded, max_upload_mb=0.1) as client:
        error = error_of(post(client, data), 413, "too large", "0.1 MB", "--max-upload-mb")
        assert error["code"] == "file_too_large"

        boundary = "b0undary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n"
                f"Content-Type: audio/wav\r\n\r\n").encode() + data * 2 + f"\r\n--{boundary}--\r\n".encode()

        def chunks():  # no Content-Length: the limit must stop the stream itself
            for start in range(0, len(body), 16384):
                yield body[start:start + 16384]

        streamed = client.post(URL, content=chunks(),
                               headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        error_of(streamed, 413, "too large")
        small = tmp_path / "small.wav"
        sf.write(small, tone(1.0), SAMPLE_RATE)
        assert post(client, small).status_code == 200
        assert work_dir_entries(client) == []


# --- load: the bounded queue, 503, batching, cancellation -----------------------------------------


def _wait_for(condition, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_full_queue_answers_503_with_retry_after_then_recovers(loaded, speech):
    with make_client(loaded, queue_size=1) as client:
        scheduler, recognizer = client.app.state.scheduler, client.app.state.scheduler.recognizer
        recognizer.gate.clear()
        first: list = []
        worker = threading.Thread(target=lambda: first.append(post(client, speech[0])))
        worker.start()
        _wait_for(lambda: scheduler.running == 1, "the first request to reach the model")
        busy = post(client, speech[1])
        error = error_of(busy, 503, "busy", "retry")
        assert error["code"] == "server_busy" and int(busy.headers["retry-after"]) >= 1
        assert client.get("/healthz").json()["requests"]["admitted"] == 1
        recognizer.gate.set()
        worker.join(60)
        assert first[0].status_code == 200
        assert post(client, speech[1]).status_code == 200  # the slot came back
        assert work_dir_entries(client) == []


def test_concurrent_short_requests_share_a_model_call_and_get_their_own_answers(loaded, speech):
    alone = {}
    with make_client(loaded, max_batch=1) as client:
        for path in speech:
            alone[path] = post(client, path, response_format="verbose_json").json()
    with make_client(loaded, max_batch=4) as client:
        scheduler, recognizer = client.app.state.scheduler, client.app.state.scheduler.recognizer
        recognizer.gate.clear()
        answers: dict = {}

        def ask(path):
            answers[path] = post(client, path, response_format="verbose_json")

        threads = [threading.Thread(target=ask, args=(speech[0],))]
        threads[0].start()
        _wait_for(lambda: scheduler.running == 1, "the first request to reach the model")
        threads += [threading.Thread(target=ask, args=(path,)) for path in speech]
        for thread in threads[1:]:
            thread.start()
        _wait_for(lambda: scheduler.waiting == 3, "three requests to queue behind it")
        recognizer.gate.set()
        for thread in threads:
            thread.join(60)
        assert [len(call) for call in recognizer.calls] == [1, 3]  # one alone, then three in one call
        assert scheduler.calls == 2
    for path in speech:  # the three batched answers (speech[0]'s replaced its first, unbatched one)
        got, want = answers[path].json()["words"], alone[path]["words"]
        assert [(w["word"], w["start"], w["end"]) for w in got] == [(w["word"], w["start"], w["end"]) for w in want]
        assert [w["confidence"] for w in got] == pytest.approx([w["confidence"] for w in want], abs=1e-3)


def test_workers_run_requests_side_by_side_and_in_arrival_order(loaded, speech):
    with make_client(loaded, workers=2) as client:
        scheduler, recognizer = client.app.state.scheduler, client.app.state.scheduler.recognizer
        recognizer.gate.clear()
        answers: dict = {}

        def ask(path):
            answers[path] = post(client, path)

        threads = []
        for count, path in enumerate(speech, 1):  # one at a time, so their order is known
            threads.append(threading.Thread(target=ask, args=(path,)))
            threads[-1].start()
            _wait_for(lambda n=count: scheduler.admitted == n and scheduler.running + scheduler.waiting == n,
                      f"request {count} to be queued")
        assert (scheduler.running, scheduler.waiting) == (2, 1)  # two workers busy, the third waits
        assert len(recognizer.calls) == 2
        recognizer.gate.set()
        for thread in threads:
            thread.join(60)
        assert len(recognizer.calls) == 3
        assert [answers[path].status_code for path in speech] == [200] * 3
        alone = [post(client, path).json()["text"] for path in speech]  # each with the server to itself
        assert [answers[path].json()["text"] for path in speech] == alone


def test_a_transcription_whose_client_left_stops_between_model_calls(loaded, speech, tmp_path):
    pause = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    sentences = [sf.read(path, dtype="float32")[0] for path in speech]
    sf.write(tmp_path / "long.wav", np.concatenate([part for _ in range(8) for s in sentences for part in (s, pause)]),
             SAMPLE_RATE)  # 24 utterances and pauses: several segments, several model calls
    recognizer = Recognizer(loaded, loaded.decoding)
    forward_calls = []
    hook = loaded.model.register_forward_hook(lambda *_: forward_calls.append(1))
    try:
        assert recognizer.transcribe([tmp_path / "long.wav"])[0].text
        needed, forward_calls[:] = len(forward_calls), []
        with pytest.raises(Cancelled):
            recognizer.transcribe([tmp_path / "long.wav"], should_stop=lambda: True)
    finally:
        hook.remove()
    assert needed > 1 and len(forward_calls) == 1  # stopped after the first of its model calls


# --- the command ---------------------------------------------------------------------------------


def test_serve_without_the_extra_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now raises ImportError
    assert main(["serve"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "asr[serve]" in err and "fastapi" in err


def test_serve_on_a_busy_port_is_one_error_line(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", "--port", str(taken.getsockname()[1]), "--workers", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: cannot listen on 127.0.0.1:") and "in use" in err


def test_bad_settings_are_one_error_line(capsys):
    assert main(["serve", "--queue-size", "0"]) == 1
    assert "--queue-size" in capsys.readouterr().err


# --- a real server (uvicorn in a thread): clients that leave --------------------------------------


@pytest.fixture
def real_server(loaded):
    """Start uvicorn on a free loopback port with a GatedRecognizer; yields (base URL, app)."""
    import socket

    config = ServeConfig(workers=1, queue_size=2)
    app = create_app(GatedRecognizer(loaded, loaded.decoding, workers=1), config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = make_server(app, config)  # with the server's own connection limits
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    _wait_for(lambda: server.started, "uvicorn to start")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", app
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def _multipart(path: Path) -> tuple[bytes, str]:
    boundary = "asr-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_a_client_that_disconnects_frees_its_slot_and_is_never_transcribed(real_server, speech):
    import socket

    import httpx

    url, app = real_server
    scheduler, recognizer = app.state.scheduler, app.state.scheduler.recognizer
    recognizer.gate.clear()
    first: list = []
    holder = threading.Thread(target=lambda: first.append(
        httpx.post(f"{url}{URL}", files={"file": speech[0].read_bytes()}, timeout=60)))
    holder.start()
    _wait_for(lambda: scheduler.running == 1, "the first request to reach the model")

    body, content_type = _multipart(speech[1])
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as leaver:  # sends a whole request, then hangs up
        leaver.sendall(f"POST {URL} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        _wait_for(lambda: scheduler.waiting == 1, "the second request to queue")
        assert httpx.get(f"{url}/healthz").json()["requests"]["admitted"] == 2
    _wait_for(lambda: scheduler.admitted == 1, "the slot of the client that left to be freed")
    third: list = []
    taker = threading.Thread(target=lambda: third.append(
        httpx.post(f"{url}{URL}", files={"file": speech[2].read_bytes()}, timeout=60)))
    taker.start()  # takes the freed slot
    _wait_for(lambda: scheduler.admitted == 2, "the third request to take the free slot")
    recognizer.gate.set()
    holder.join(60)
    taker.join(60)
    assert first[0].status_code == 200 and third[0].status_code == 200
    assert len(recognizer.calls) == 2  # the first request and the third; never the one whose client left
    assert list(app.state.work_dir.iterdir()) == []


def test_a_busy_server_answers_503_even_to_a_large_upload(real_server, tmp_path):
    import httpx

    url, app = real_server
    app.state.scheduler.recognizer.gate.clear()
    sf.write(tmp_path / "big.wav", tone(150.0), SAMPLE_RATE)  # 4.8 MB
    holders = [threading.Thread(target=httpx.post, args=(f"{url}{URL}",),
                                kwargs={"files": {"file": (tmp_path / "big.wav").read_bytes()}, "timeout": 60})
               for _ in range(2)]
    for holder in holders:
        holder.start()
    _wait_for(lambda: app.state.scheduler.admitted == 2, "two requests to take both slots")
    busy = httpx.post(f"{url}{URL}", files={"file": (tmp_path / "big.wav").read_bytes()}, timeout=60)
    app.state.scheduler.recognizer.gate.set()
    for holder in holders:
        holder.join(60)
    error_of(busy, 503, "busy")
    assert int(busy.headers["retry-after"]) >= 1
