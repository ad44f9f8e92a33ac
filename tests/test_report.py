"""`asr evaluate --report`: the self-contained HTML page (asr.report).

The tables are checked against hand-made rows; the page for the six-sentence manifest, decoded by
the tiny model, must hold them and one picture and one audio player per shown utterance, all inside
the file; and headless Chromium must open it offline and draw it (the screenshot is not blank, every
picture decodes, every player accepts its audio).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_cli import _one_error_line

from asr.audio import SAMPLE_RATE
from asr.cli import main
from asr.data.manifest import Utterance, read_manifest
from asr.metrics import ErrorCounts
from asr.report import aligned_html, confusions, duration_bucket, encode_audio, group_table, score_rows, worst


def _rows(pairs: list[tuple[str, str]]) -> list[dict]:
    return [{"id": f"u{i}", "ref": ref, "hyp": hyp} for i, (ref, hyp) in enumerate(pairs)]


def _utts(durations: list[float], speakers: list[str]) -> list[Utterance]:
    return [Utterance(f"u{i}", "x.wav", d, "", s) for i, (d, s) in enumerate(zip(durations, speakers))]


def test_tables_by_speaker_duration_and_confusion():
    rows = _rows([("the cat sat", "the cat sat"), ("a red door", "a bed"), ("the dog", "a dog ran"),
                  ("red red", "bed red")])
    scored = score_rows(rows, _utts([1.0, 3.0, 12.0, 25.0], ["ann", "bob", "ann", "bob"]))
    by_speaker = {g: (n, w) for g, n, w, _ in group_table(scored, lambda s: s.utt.speaker)}
    assert by_speaker["ann"] == (2, ErrorCounts(substitutions=1, insertions=1, reference_length=5))
    assert by_speaker["bob"] == (2, ErrorCounts(substitutions=2, deletions=1, reference_length=5))
    assert [duration_bucket(s.utt.duration) for s in scored] == ["0-2 s", "2-5 s", "10-20 s", "20+ s"]
    assert confusions([s.word_pairs for s in scored])[0] == ("red", "bed", 2)
    assert ("the", "a", 1) in confusions([s.word_pairs for s in scored])
    assert ("r", "b", 2) in confusions([s.char_pairs for s in scored])
    assert [s.utt.id for s in worst(scored, 3)] == ["u2", "u1", "u3"]  # WER 2/2, 2/3, 1/2
    assert [s.utt.id for s in worst(scored, 10)] == ["u2", "u1", "u3"]  # u0 is right: not among the worst


def test_aligned_words_are_coloured_by_kind():
    cells = aligned_html([("the", "the"), ("cat", "hat"), ("sat", "*"), ("*", "<b>")])
    assert re.findall(r'class="w (\w+)"', cells) == ["ok", "sub", "del", "ins"]
    assert "&lt;b&gt;" in cells and "<b>" not in cells  # text is escaped


def test_embedded_audio_is_small_and_decodes():
    audio = (0.1 * np.sin(np.arange(3 * SAMPLE_RATE) / 10)).astype(np.float32)
    data = encode_audio(audio)
    assert len(data) < 20_000  # Opus: a few kB a second
    decoded, rate = sf.read(io.BytesIO(data))
    assert abs(len(decoded) / rate - 3.0) < 0.05


@pytest.fixture(scope="module")
def report(tiny_checkpoint, speech_manifest, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert main(["evaluate", "--model", str(tiny_checkpoint), "--manifest", str(speech_manifest), "--out-dir",
                 str(out), "--report", str(out / "report.html"), "--report-utterances", "4", "--jobs", "0"]) == 0
    return out / "report.html"


def test_report_holds_the_tables_and_a_picture_per_shown_utterance(report, speech_manifest):
    page = report.read_text(encoding="utf-8")
    summary = (report.parent / "wer-summary-speech.json").read_text()
    wer = re.search(r'"wer": ([\d.]+)', summary).group(1)
    assert f"WER {100 * float(wer):.2f}%" in page  # the same figure as the summary file
    for heading in ("Summary", "By speaker", "By duration", "Word confusions", "Character confusions",
                    "Worst utterances"):
        assert f"<h2>{heading}</h2>" in page
    assert "6 of 6 utterances have errors; here are the 4 worst" in page  # an untrained model gets all wrong
    assert "at most 4 (--report-utterances)" in page
    assert "<td>espeak</td><td>6</td>" in page  # the one speaker, all six utterances
    pictures = re.findall(r'<img alt="decoding of ([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    players = re.findall(r'<audio controls preload="none" src="data:audio/ogg;base64,([^"]+)"', page)
    assert len(pictures) == len(players) == 4
    ids = {u.id for u in read_manifest(speech_manifest)}
    for utt_id, png in pictures:
        assert utt_id in ids and base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from anywhere


@pytest.mark.slow
def test_report_opens_in_chromium(report, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="the test extra installs selenium")
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make system-deps installs them)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    # no network at all: the page must not need any
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1600",
                 "--disable-background-networking", "--proxy-server=127.0.0.1:9", f"--user-data-dir={tmp_path}"):
        options.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        driver.get(report.as_uri())
        widths = driver.execute_script("return Array.from(document.images).map(i => i.complete && i.naturalWidth)")
        playable = driver.execute_script("return Array.from(document.querySelectorAll('audio'))"
                                         ".map(a => a.canPlayType('audio/ogg; codecs=opus'))")
        shot = driver.get_screenshot_as_png()
    finally:
        driver.quit()
    assert len(widths) == 4 and all(w > 100 for w in widths), widths
    assert playable == ["probably"] * 4
    from matplotlib.image import imread

    pixels = imread(io.BytesIO(shot))  # (height, width, channels)
    assert pixels.shape[0] > 500 and pixels.std() > 0.05  # drawn, not a blank page
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 50


def test_an_empty_manifest_is_one_error_line(tiny_checkpoint, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["evaluate", "--model", str(tiny_checkpoint), "--manifest", str(empty),
                 "--report", str(tmp_path / "r.html")]) == 1
    _one_error_line(capsys.readouterr().err, "empty.jsonl", "manifest is empty")
    assert not (tmp_path / "r.html").exists()


def test_unreadable_audio_is_one_error_line(tiny_checkpoint, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 100)
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text('{"id": "b", "audio_path": "bad.wav", "duration": 1.0, "text": "hello", "speaker": "s"}\n')
    assert main(["evaluate", "--model", str(tiny_checkpoint), "--manifest", str(manifest), "--jobs", "0",
                 "--report", str(tmp_path / "r.html")]) == 1
    _one_error_line(capsys.readouterr().err, "bad.wav", "not a readable audio file")


def test_a_negative_cap_is_one_error_line(tiny_checkpoint, speech_manifest, tmp_path, capsys):
    assert main(["evaluate", "--model", str(tiny_checkpoint), "--manifest", str(speech_manifest), "--out-dir",
                 str(tmp_path), "--report", str(tmp_path / "r.html"), "--report-utterances", "-1"]) == 1
    _one_error_line(capsys.readouterr().err, "--report-utterances must be 0 or more")


def test_an_utterance_inside_a_longer_file_is_cut_out(tiny_checkpoint, speech_dir):
    """Manifests may point at a stretch of a recording (offset): its audio and picture are that stretch."""
    from asr.checkpoint import load_model
    from asr.decode import GreedyDecoder
    from asr.report import ReportInput, utterance_media

    loaded = load_model(tiny_checkpoint)
    utt = Utterance("part", str(speech_dir / "utt0.wav"), 0.8, "the cat", "espeak", offset=0.5)
    picture, audio, seconds = utterance_media(ReportInput("t", [], [utt], loaded, GreedyDecoder(loaded.tokenizer),
                                                          "greedy"), utt)
    decoded, rate = sf.read(io.BytesIO(audio))
    assert seconds == 0.8 and abs(len(decoded) / rate - 0.8) < 0.03
    assert picture[:8] == b"\x89PNG\r\n\x1a\n"
