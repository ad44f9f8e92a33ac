"""asr.synth.corpus and `asr synth`: deterministic plans, resumable Opus corpora, failures as one line."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import ONE_THREAD_ENV, signal_after

from asr.audio import SAMPLE_RATE
from asr.cli import main
from asr.data.manifest import read_manifest
from asr.synth.corpus import HUNG_LIMIT, plan_jobs, synthesize, synthesize_corpus
from asr.synth.prompts import GRAMMAR, PromptSource
from asr.synth.voices import HELDOUT_VOICES, WARPS

TEXTS = ("we call it bear", "three two two seven", "my sister will miss you", "open the window please",
         "where is the station")
SOURCES = [PromptSource("texts", 1.0, TEXTS), PromptSource(GRAMMAR, 0.5)]
ALL_ENGINES = ["espeak", "flite", "festival", "piper"]
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
needs_espeak_and_flite = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("flite") is None,
                                            reason="espeak-ng and flite are needed")


@pytest.fixture
def any_engine(monkeypatch):
    """Plans do not run engines; let them name every engine on any machine."""
    monkeypatch.setattr("asr.synth.corpus.check_engines", lambda engines: None)


def test_plan_is_deterministic_prefix_stable_and_spread_over_voices(any_engine):
    jobs = plan_jobs(SOURCES, 300, seed=3, engines=ALL_ENGINES)
    assert jobs == plan_jobs(SOURCES, 300, seed=3, engines=ALL_ENGINES)
    assert jobs[:50] == plan_jobs(SOURCES, 50, seed=3, engines=ALL_ENGINES)
    assert [j.id for j in jobs] != [j.id for j in plan_jobs(SOURCES, 300, seed=4, engines=ALL_ENGINES)]
    assert len({j.id for j in jobs}) == 300
    assert {j.engine for j in jobs} == set(ALL_ENGINES) and len({j.speaker for j in jobs}) > 150
    assert {j.warp for j in jobs} == set(WARPS)
    assert {j.source for j in jobs} == {"texts", GRAMMAR}
    assert all(j.text.lower() in TEXTS for j in jobs if j.source == "texts")
    assert all(0.35 <= j.noise_scale <= 0.9 and 0.4 <= j.noise_w <= 1.2 for j in jobs)


def test_dev_split_uses_only_heldout_voices_and_heldout_text(any_engine):
    many = [PromptSource("texts", 1.0, tuple(f"sentence number {i}" for i in range(2000)))]
    train = plan_jobs(many + [PromptSource(GRAMMAR, 1.0)], 300, seed=0, engines=ALL_ENGINES)
    dev = plan_jobs(many + [PromptSource(GRAMMAR, 1.0)], 300, seed=0, engines=ALL_ENGINES, split="dev")
    assert all((j.engine, j.voice) in HELDOUT_VOICES for j in dev)
    assert not any((j.engine, j.voice) in HELDOUT_VOICES for j in train)
    assert "piper" not in {j.engine for j in dev}  # its one voice trains
    assert not {j.text for j in train} & {j.text for j in dev}
    assert {j.speaker for j in dev} <= {f"{j.engine}-{j.voice}-w{w:.2f}" for j in dev for w in WARPS}


@pytest.mark.slow
@needs_espeak
def test_corpus_is_reproducible_and_resumable(tmp_path):
    jobs = plan_jobs(SOURCES, 6, seed=1, engines=["espeak"])
    first, failed = synthesize_corpus(jobs, tmp_path / "a" / "audio", tmp_path / "a" / "m.jsonl", workers=2)
    assert not failed
    # Paths are stored relative to the manifest's folder.
    assert read_manifest(tmp_path / "a" / "m.jsonl") == [
        dataclasses.replace(u, audio_path=str(tmp_path / "a" / u.audio_path)) for u in first]
    again, _ = synthesize_corpus(jobs, tmp_path / "b" / "audio", tmp_path / "b" / "m.jsonl", workers=1)
    assert again == first  # same ids, relative paths, durations and texts
    for u in first:
        a, rate = sf.read(tmp_path / "a" / u.audio_path, dtype="float32")
        b, _ = sf.read(tmp_path / "b" / u.audio_path, dtype="float32")
        assert u.audio_path.endswith(".opus") and sf.info(tmp_path / "a" / u.audio_path).format == "OGG"
        assert rate == SAMPLE_RATE and np.array_equal(a, b) and 1.0 < u.duration < 15
        assert u.speaker.startswith("espeak-")
    # Resume: a finished file is kept as it is, a missing one is made again, more jobs are added.
    kept = tmp_path / "a" / first[0].audio_path
    stamp = kept.stat().st_mtime_ns
    (tmp_path / "a" / first[1].audio_path).unlink()
    more, _ = synthesize_corpus(plan_jobs(SOURCES, 8, seed=1, engines=["espeak"]), tmp_path / "a" / "audio",
                                tmp_path / "a" / "m.jsonl")
    assert more[:6] == first and len(more) == 8
    assert kept.stat().st_mtime_ns == stamp and (tmp_path / "a" / first[1].audio_path).is_file()


@needs_espeak
def test_rendered_audio_has_the_planned_padding_gain_and_noise_floor():
    job = plan_jobs([PromptSource("t", 1.0, ("open the window",))], 1, seed=0, engines=["espeak"])[0]
    audio = synthesize(job)
    speech = audio[int(job.pad_start * SAMPLE_RATE): len(audio) - int(job.pad_end * SAMPLE_RATE)]
    assert audio.dtype == np.float32 and np.abs(audio).max() <= 1
    assert 0.5 < len(speech) / SAMPLE_RATE < 5
    assert np.abs(speech).max() == pytest.approx(job.gain, abs=0.02)  # speech peak at the job's gain
    lead = audio[: int(job.pad_start * SAMPLE_RATE)]
    assert np.sqrt(np.mean(lead ** 2)) < 0.01  # the lead-in is only the faint noise floor


def _hanging_espeak(folder) -> dict:
    """An environment whose espeak-ng never answers (flite and the rest still work); each call
    leaves a line in FOLDER/calls."""
    folder.mkdir()
    fake = folder / "espeak-ng"
    fake.write_text(f"#!/bin/sh\necho called >> {folder / 'calls'}\nsleep 600\n")
    fake.chmod(0o755)
    return {**ONE_THREAD_ENV, "PATH": f"{folder}:{os.environ['PATH']}"}


@pytest.mark.slow
@needs_espeak_and_flite
def test_a_hanging_engine_costs_only_its_own_utterances(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _hanging_espeak(tmp_path / "bin")["PATH"])
    jobs = plan_jobs(SOURCES, 12, seed=0, engines=["espeak", "flite"])
    hung = [j for j in jobs if j.engine == "espeak"]
    assert len(hung) > 3
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        # 2 s: far more than flite needs even on a busy machine, far less than the fake's 600 s
        made, failed = synthesize_corpus(jobs, tmp_path / "audio", tmp_path / "m.jsonl", timeout=2.0, log=f)
    # HUNG_LIMIT hangs, then the engine is skipped: it was not called for the other utterances
    assert len((tmp_path / "bin" / "calls").read_text().splitlines()) == HUNG_LIMIT < len(hung)
    assert {u.id for u in made} == {j.id for j in jobs if j.engine == "flite"}
    assert len(failed) == len(hung) and all("espeak" in line for line in failed)
    warnings = log.read_text().splitlines()
    assert sum("hung 3 times in a row" in w for w in warnings) == 1  # one line for the rest, not one each
    assert read_manifest(tmp_path / "m.jsonl") and len(list((tmp_path / "audio").iterdir())) == len(made)


def _synth_args(tmp_path, count: int) -> list[str]:
    return ["synth", "--out-dir", str(tmp_path / "audio"), "--manifest", str(tmp_path / "m.jsonl"), "--count",
            str(count), "--engines", "espeak", "--jobs", "1"]


@pytest.mark.slow
@needs_espeak
def test_a_killed_run_resumes_without_duplicates(tmp_path):
    count = 12
    audio = tmp_path / "audio"
    # SIGKILL right after the 5th file is made (tests/signal_after.py).
    killed = subprocess.run(signal_after("asr.synth.corpus:make_utterance", 5, "SIGKILL", "self",
                                         _synth_args(tmp_path, count)),
                            env=ONE_THREAD_ENV, capture_output=True, text=True, timeout=120, start_new_session=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    before = {p.name: p.stat().st_mtime_ns for p in audio.glob("*.opus")}
    assert len(before) == 5
    done = subprocess.run([sys.executable, "-m", "asr", *_synth_args(tmp_path, count)], env=ONE_THREAD_ENV,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = read_manifest(tmp_path / "m.jsonl")
    assert len(rows) == count and len({u.id for u in rows}) == count
    assert sorted(p.name for p in audio.glob("*.opus")) == sorted(f"{u.id}.opus" for u in rows)
    assert all(before[name] == (audio / name).stat().st_mtime_ns for name in before)  # finished files kept


@needs_espeak
def test_cli_reports_missing_engines_and_bad_prompts_in_one_line(tmp_path, capsys, monkeypatch):
    manifest = tmp_path / "m.jsonl"
    assert main(["synth", "--out-dir", str(tmp_path / "audio"), "--manifest", str(manifest), "--count", "2",
                 "--engines", "espeak", "--jobs", "1"]) == 0
    assert len(read_manifest(manifest)) == 2
    assert "2 utterances" in capsys.readouterr().out
    for flags, message in [(["--prompts", str(tmp_path / "none.jsonl")], "none.jsonl"),
                           (["--engines", "espeak,mbrola"], "unknown engine(s) mbrola")]:
        assert main(["synth", "--out-dir", str(tmp_path), "--manifest", str(manifest), "--count", "1",
                     *flags]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["synth", "--out-dir", str(tmp_path), "--manifest", str(manifest), "--count", "1",
                 "--engines", "espeak"]) == 1
    assert capsys.readouterr().err.strip() == "error: engine(s) not installed: espeak (make system-deps installs " \
                                              "the Debian ones; pip install -e '.[synth]' installs piper)"
    assert len(read_manifest(manifest)) == 2  # nothing lost
