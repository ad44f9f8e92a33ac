"""`asr synth`: planned jobs are a pure function of the seed, files are resumable, audio is usable."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import soundfile as sf

from asr.audio import SAMPLE_RATE
from asr.cli import main
from asr.data.manifest import read_manifest
from asr.synth.synthesize import (
    SynthesisError,
    available_engines,
    extra_sentence,
    number_words,
    plan_jobs,
    render,
    synthesize_corpus,
)
from asr.text import normalize_text

TEXTS = ["WE CALL IT BEAR", "THREE TWO TWO SEVEN", "MY SISTER WILL MISS YOU"]
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def test_plan_is_deterministic_prefix_stable_and_uses_only_given_texts():
    engines = ["espeak", "flite", "piper"]
    jobs = plan_jobs(TEXTS, 200, seed=3, engines=engines)
    assert jobs == plan_jobs(TEXTS, 200, seed=3, engines=engines)
    assert jobs[:50] == plan_jobs(TEXTS, 50, seed=3, engines=engines)
    assert [j.id for j in jobs] != [j.id for j in plan_jobs(TEXTS, 200, seed=4, engines=engines)]
    assert len({j.id for j in jobs}) == 200
    assert {j.engine for j in jobs} == set(engines) and len({j.speaker for j in jobs}) > 30
    only_given = plan_jobs(TEXTS, 100, seed=0, engines=["espeak"], extra_fraction=0.0)
    assert {j.text for j in only_given} <= set(TEXTS)
    made_up = plan_jobs(TEXTS, 100, seed=0, engines=["espeak"], extra_fraction=1.0)
    assert not {j.text for j in made_up} & set(TEXTS)


def test_extra_sentences_are_normalized_words():
    rng = np.random.default_rng(0)
    sentences = [extra_sentence(rng) for _ in range(300)]
    assert all(s == normalize_text(s) and s for s in sentences)
    assert len(set(sentences)) > 250
    assert [number_words(n) for n in (0, 13, 40, 42, 99)] == ["zero", "thirteen", "forty", "forty two",
                                                              "ninety nine"]


def test_unknown_or_missing_engines_are_clear_errors():
    with pytest.raises(SynthesisError, match="unknown engine"):
        plan_jobs(TEXTS, 1, engines=["festival"])
    with pytest.raises(SynthesisError, match="no text-to-speech engine"):
        plan_jobs(TEXTS, 1, engines=[])


@needs_espeak
def test_corpus_is_reproducible_and_resumable(tmp_path):
    first = synthesize_corpus(TEXTS, tmp_path / "a" / "wav", tmp_path / "a" / "m.jsonl", 6, seed=1,
                              engines=["espeak"], jobs=2)
    # Paths are stored relative to the manifest's folder.
    assert read_manifest(tmp_path / "a" / "m.jsonl") == [
        dataclasses.replace(u, audio_path=str(tmp_path / "a" / u.audio_path)) for u in first]
    again = synthesize_corpus(TEXTS, tmp_path / "b" / "wav", tmp_path / "b" / "m.jsonl", 6, seed=1,
                              engines=["espeak"], jobs=1)
    assert again == first  # same ids, relative paths, durations and texts
    for u in first:
        a, rate = sf.read(tmp_path / "a" / u.audio_path, dtype="int16")
        b, _ = sf.read(tmp_path / "b" / u.audio_path, dtype="int16")
        assert rate == SAMPLE_RATE and np.array_equal(a, b) and 1.0 < u.duration < 15
    # Resume: a finished file is kept as it is, a missing one is made again, more jobs are added.
    kept = tmp_path / "a" / first[0].audio_path
    stamp = kept.stat().st_mtime_ns
    (tmp_path / "a" / first[1].audio_path).unlink()
    more = synthesize_corpus(TEXTS, tmp_path / "a" / "wav", tmp_path / "a" / "m.jsonl", 8, seed=1,
                             engines=["espeak"], jobs=1)
    assert more[:6] == first and len(more) == 8
    assert kept.stat().st_mtime_ns == stamp and (tmp_path / "a" / first[1].audio_path).is_file()


@pytest.mark.parametrize("engine", ["espeak", "flite", "piper"])
def test_each_installed_engine_speaks(engine):
    if engine not in available_engines():
        pytest.skip(f"{engine} is not installed")
    job = plan_jobs(["OPEN THE WINDOW"], 1, seed=0, engines=[engine], extra_fraction=0.0)[0]
    audio = render(job)
    speech = audio[int(job.pad_start * SAMPLE_RATE): len(audio) - int(job.pad_end * SAMPLE_RATE)]
    assert audio.dtype == np.float32 and np.abs(audio).max() <= 1
    assert 0.5 < len(speech) / SAMPLE_RATE < 5
    assert np.abs(speech).max() == pytest.approx(job.gain, abs=0.02)  # speech peak at the job's gain
    lead = audio[: int(job.pad_start * SAMPLE_RATE)]
    assert np.sqrt(np.mean(lead ** 2)) < 0.01  # the lead-in is only the faint noise floor


@needs_espeak
def test_cli_writes_manifest_and_reports_bad_manifest(tmp_path, capsys):
    manifest = tmp_path / "synth.jsonl"
    assert main(["synth", "--out-dir", str(tmp_path / "wav"), "--manifest", str(manifest), "--count", "2",
                 "--engines", "espeak", "--jobs", "1"]) == 0
    assert len(read_manifest(manifest)) == 2
    assert main(["synth", "--text-manifest", str(tmp_path / "none.jsonl"), "--out-dir", str(tmp_path),
                 "--manifest", str(manifest), "--count", "1"]) == 1
    assert capsys.readouterr().err.startswith("error: ")
