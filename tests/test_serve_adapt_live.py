"""The "teach it your voice" page (GET /adapt) in headless Chromium with a fake microphone.

A real `asr serve` (the bundled model, adapted models in a temporary folder) and
Chromium's fake audio capture playing an espeak-ng sentence: the test records six
prompts (one of them twice: "Redo"), builds a model with a two-step budget
(`?steps=2`), waits for the before/after figure, and transcribes a new recording
with the new model, which the server then lists in /v1/models.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="asr serve needs the serve extra: pip install -e '.[serve]'")
httpx = pytest.importorskip("httpx", reason="the test extra installs httpx")

from conftest import ONE_THREAD_ENV, synthesize  # noqa: E402
from test_serve_live import chromium, wait_until  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
RECORD_SECONDS = 2.6  # per prompt: five of them make the 10 s adaptation needs at least


@pytest.fixture(scope="module")
def adapt_server(tmp_path_factory):
    """(base URL, models folder) of `asr serve --port 0` with adapted models kept in a temporary folder."""
    models = tmp_path_factory.mktemp("adapted")
    log = (tmp_path_factory.mktemp("server") / "stderr.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "asr", "serve", "--port", "0", "--models-dir", str(models),
                                "--max-adapt-minutes", "8"],
                               cwd=ROOT, env=ONE_THREAD_ENV, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert match, f"asr serve did not start: {line!r}; stderr in {log.name}"
        assert str(models) in line  # it says where adapted models go
        yield match.group(0), models
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def record(driver, button) -> None:
    button.click()
    wait_until(driver, lambda d: button.get_attribute("aria-pressed") == "true")
    time.sleep(RECORD_SECONDS)
    button.click()


def test_record_prompts_adapt_and_transcribe_with_the_new_model(adapt_server, tmp_path):
    server, models = adapt_server
    voice = synthesize("open the window and close the door", tmp_path / "voice.wav")
    driver = chromium(tmp_path, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                      f"--use-file-for-fake-audio-capture={voice}")
    try:
        driver.get(f"{server}adapt?steps=2")
        wait_until(driver, lambda d: len(d.find_elements("css selector", "#prompts li")) == 30)
        items = driver.find_elements("css selector", "#prompts li")
        assert not items[0].find_element("css selector", ".text").text.startswith("#")
        build = driver.find_element("id", "build")
        for item in items[:6]:
            record(driver, item.find_element("css selector", "button.record"))
            wait_until(driver, lambda d, item=item: "✓" in item.find_element("css selector", ".state").text)
            assert driver.find_element("id", "error").text == ""
        redo = items[0].find_element("css selector", "button.record")
        assert redo.text == "Redo"
        record(driver, redo)
        wait_until(driver, lambda d: d.find_element("id", "count").text.startswith("6 of 30"))
        assert "1 held back" in driver.find_element("id", "count").text
        wait_until(driver, lambda d: build.is_enabled())
        build.click()
        wait_until(driver, lambda d: d.find_element("id", "result").is_displayed()
                   or d.find_element("id", "error").text, seconds=600)
        assert driver.find_element("id", "error").text == ""
        for key in ("before", "after"):
            assert re.fullmatch(r"\d+\.\d%", driver.find_element("id", f"wer-{key}").text)
        assert len(driver.find_elements("css selector", "#prompt-table tbody tr")) == 1
        model = driver.find_element("id", "model-id").text.removeprefix("Transcribed with ")

        tried = driver.find_element("id", "try-record")
        record(driver, tried)
        wait_until(driver, lambda d: d.find_element("id", "try-text").text not in ("", "Transcribing…")
                   or d.find_element("id", "error").text, seconds=120)
        assert driver.find_element("id", "error").text == ""
        driver.save_screenshot(str(tmp_path / "adapted.png"))
    finally:
        driver.quit()
    assert model.startswith("adapted/voice-")
    listed = httpx.get(f"{server}v1/models", timeout=60).json()["data"]
    assert [m["id"] for m in listed] == ["pretrained", model]
    assert (models / model.split("/")[1] / "model.pt").is_file()
