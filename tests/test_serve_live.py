"""`asr serve` as users meet it: a real server process, the page in headless Chromium, docs/serving.md's OpenAI example.

One server (`asr serve --port 0`, the bundled model) is started for the module.
The browser tests drive the page with Selenium and Debian's chromium +
chromium-driver (`make` installs them; the tests skip only when they are absent):
an uploaded WAV must give on the page exactly what the API gives for the same
file, down to the downloaded subtitles; a failed upload must be reported on the
page; and the microphone path is fed by Chromium's fake audio capture, whose
recording must hold that audio and be transcribed as the API transcribes it.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="asr serve needs the serve extra: pip install -e '.[serve]'")
httpx = pytest.importorskip("httpx", reason="the test extra installs httpx")

from conftest import ONE_THREAD_ENV, synthesize  # noqa: E402

from asr.audio import SAMPLE_RATE, resample  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# Headless Chromium as root in a container, with no network: nothing phones home.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1100,1300"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Base URL of `asr serve --port 0` running the bundled model; stopped after the module."""
    log = (tmp_path_factory.mktemp("server") / "stderr.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "asr", "serve", "--port", "0"], cwd=ROOT, env=ONE_THREAD_ENV,
                               stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = process.stdout.readline()  # "asr serve: MODEL on http://127.0.0.1:PORT/ (...)"
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert match, f"asr serve did not start: {line!r}; stderr in {log.name}"
        yield match.group(0)
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@pytest.fixture(scope="module")
def sentence(tmp_path_factory) -> Path:
    return synthesize("open the window and close the door", tmp_path_factory.mktemp("live") / "sentence.wav")


def api(server: str, path: Path, fmt: str) -> httpx.Response:
    response = httpx.post(f"{server}v1/audio/transcriptions", files={"file": (path.name, path.read_bytes())},
                          data={"response_format": fmt}, timeout=60)
    assert response.status_code == 200, response.text
    return response


def chromium(tmp_path: Path, *flags: str):
    """A headless Chromium (system binary and driver, fresh profile) that downloads into tmp_path/downloads."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="the test extra installs selenium")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make system-deps installs them)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *flags]:
        options.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    (tmp_path / "downloads").mkdir()
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow",
                                                           "downloadPath": str(tmp_path / "downloads")})
    return driver


def wait_until(driver, condition, seconds: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.1).until(condition)


# Seconds of audio the page's recorder has received so far (its `recorder` is a global of the page).
CAPTURED_SECONDS = ("return recorder ? recorder.chunks.reduce((n, c) => n + c.length, 0) / recorder.context.sampleRate"
                    " : 0;")


def page_state(driver) -> str:
    return driver.find_element("tag name", "body").get_attribute("data-state")


def open_page(driver, server: str) -> None:
    driver.get(server)
    wait_until(driver, lambda d: d.find_element("id", "model").text.startswith("Model "))


def wait_for_file(path: Path, seconds: float = 20, binary: bool = False) -> str | bytes:
    """The contents of a download once Chromium has finished it (it writes NAME.crdownload, then renames)."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} was never downloaded"
        time.sleep(0.1)
    return path.read_bytes() if binary else path.read_text(encoding="utf-8")


def test_uploaded_file_shows_what_the_api_returns(server, sentence, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    expected = api(server, sentence, "verbose_json").json()
    assert expected["words"], "the bundled model should hear words in synthesized speech"
    driver = chromium(tmp_path)
    try:
        open_page(driver, server)
        driver.find_element("id", "file").send_keys(str(sentence))
        wait_until(driver, lambda d: page_state(d) in ("done", "error"))
        assert page_state(driver) == "done", driver.find_element("id", "error").text
        words = driver.find_elements("css selector", "#transcript .word")
        assert [w.text for w in words] == [w["word"] for w in expected["words"]]
        for span, word in zip(words, expected["words"]):
            assert float(span.get_attribute("data-start")) == word["start"]
            assert float(span.get_attribute("data-end")) == word["end"]
            colour = span.value_of_css_property("background-color")  # rgba(r, g, b, alpha): less sure, darker
            alpha = float(colour.rstrip(")").split(",")[3]) if colour.startswith("rgba") else 1.0
            assert alpha == pytest.approx((1 - word["confidence"]) * 0.65, abs=5e-3), colour

        ActionChains(driver).move_to_element(words[-1]).perform()  # hover: time and confidence
        last = expected["words"][-1]
        tip = f"{last['start']:.2f}–{last['end']:.2f} s"
        wait_until(driver, lambda d: tip in d.find_element("id", "word-info").text)
        words[0].send_keys(Keys.ARROW_RIGHT)  # keyboard: arrows move between words
        assert driver.switch_to.active_element == words[1]
        assert f"{expected['words'][1]['start']:.2f}" in driver.find_element("id", "word-info").text

        for fmt in ("txt", "srt", "vtt"):
            driver.find_element("id", f"download-{fmt}").click()
            got = wait_for_file(tmp_path / "downloads" / f"sentence.{fmt}")
            assert got == (expected["text"] + "\n" if fmt == "txt" else api(server, sentence, fmt).text), fmt
        driver.save_screenshot(str(tmp_path / "page.png"))
    finally:
        driver.quit()
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_says_clearly_when_a_file_fails_and_recovers_on_a_dropped_file(server, sentence, tmp_path):
    notes = tmp_path / "notes.wav"
    notes.write_text("meeting notes, not audio\n" * 10)
    driver = chromium(tmp_path)
    try:
        open_page(driver, server)
        driver.find_element("id", "file").send_keys(str(notes))
        wait_until(driver, lambda d: page_state(d) == "error")
        message = driver.find_element("id", "error").text
        assert "notes.wav" in message and "HTTP 400" in message and "not a readable audio file" in message
        driver.save_screenshot(str(tmp_path / "error.png"))
        driver.execute_script("""  // drag and drop, as the browser delivers a dropped file
            const [data, name] = arguments;
            const transfer = new DataTransfer();
            transfer.items.add(new File([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], name));
            const drop = new DragEvent("drop", {dataTransfer: transfer, bubbles: true});
            document.getElementById("drop").dispatchEvent(drop);
        """, base64.b64encode(sentence.read_bytes()).decode(), sentence.name)
        wait_until(driver, lambda d: page_state(d) in ("done", "error"))
        assert driver.find_element("id", "error").text == ""
        shown = [w.text for w in driver.find_elements("css selector", "#transcript .word")]
        assert shown == api(server, sentence, "json").json()["text"].split()
    finally:
        driver.quit()


def test_microphone_recording_is_sent_as_wav_and_transcribed(server, sentence, tmp_path):
    from selenium.webdriver.common.keys import Keys

    source, rate = sf.read(sentence, dtype="float32")
    driver = chromium(tmp_path, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                      f"--use-file-for-fake-audio-capture={sentence}")
    try:
        open_page(driver, server)
        record = driver.find_element("id", "record")
        record.send_keys(Keys.ENTER)  # keyboard only
        wait_until(driver, lambda d: page_state(d) in ("recording", "error"))
        assert page_state(driver) == "recording", driver.find_element("id", "error").text
        # The fake microphone loops the file from wherever it is: record until the page holds
        # enough audio to hear the file's first second whole at least once (the captured samples,
        # not the wall clock: a busy machine delivers them late).
        wanted = len(source) / rate + 1.5
        wait_until(driver, lambda d: d.execute_script(CAPTURED_SECONDS) >= wanted)
        record.send_keys(Keys.ENTER)
        wait_until(driver, lambda d: page_state(d) in ("done", "error"))
        assert page_state(driver) == "done", driver.find_element("id", "error").text
        shown = " ".join(w.text for w in driver.find_elements("css selector", "#transcript .word"))
        driver.find_element("id", "recording").click()  # "Download recording": the WAV that was sent
        wait_for_file(tmp_path / "downloads" / "recording.wav", binary=True)
        driver.save_screenshot(str(tmp_path / "recorded.png"))
    finally:
        driver.quit()
    wav = (tmp_path / "downloads" / "recording.wav").read_bytes()

    info = sf.info(io.BytesIO(wav))
    assert (info.format, info.subtype, info.channels) == ("WAV", "PCM_16", 1)
    recording, recorded_rate = sf.read(io.BytesIO(wav), dtype="float32")
    assert len(source) / rate + 1 < len(recording) / recorded_rate < len(source) / rate + 5
    # The recording holds the file Chromium played as the microphone: somewhere in it, a stretch
    # correlates strongly with the file's first second.
    heard = resample(recording, recorded_rate)
    probe = resample(source, rate)[: SAMPLE_RATE]
    probe = probe - probe.mean()
    windows = np.lib.stride_tricks.sliding_window_view(heard, len(probe))[::8]
    windows = windows - windows.mean(axis=1, keepdims=True)
    scores = windows @ probe / (np.linalg.norm(windows, axis=1) * np.linalg.norm(probe) + 1e-9)
    assert scores.max() > 0.8, f"the recording does not contain the fake microphone's audio ({scores.max():.2f})"
    # ... and the page shows what the API says about that recording.
    assert shown == api(server, tmp_path / "downloads" / "recording.wav", "json").json()["text"]


def test_the_openai_example_of_the_docs_runs_against_the_server(server):
    pytest.importorskip("openai", reason="the docs' example needs the openai package (the test extra)")
    page = (ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    [example] = [block for block in re.findall(r"```python\n(.*?)```", page, re.DOTALL) if "OpenAI(" in block]
    assert "http://127.0.0.1:8000/v1" in example and '"data/samples/01-en-us.flac"' in example
    script = example.replace("http://127.0.0.1:8000/", server)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    expected = api(server, ROOT / "data" / "samples" / "01-en-us.flac", "verbose_json").json()
    lines = run.stdout.splitlines()
    assert lines[0] == expected["text"]
    assert lines[1:] == [f"{w['start']:6.2f} {w['end']:6.2f} {w['word']}" for w in expected["words"]]


def test_the_curl_example_of_the_docs_runs_against_the_server(server):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    page = (ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    [line] = [line for line in page.splitlines() if line.startswith("curl ")]
    command = shlex.split(line.split("#")[0].replace("http://127.0.0.1:8000/", server))
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout == api(server, ROOT / "data" / "samples" / "01-en-us.flac", "srt").text
