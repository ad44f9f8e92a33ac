"""asr.data.manifest and asr.corpora.importers on corpora built inside the tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import soundfile as sf
from conftest import tone

from asr.audio import SAMPLE_RATE
from asr.cli import main
from asr.corpora.importers import import_folder, import_kaldi_dir, import_librispeech
from asr.data.manifest import ManifestError, Utterance, read_manifest, read_mix, write_manifest


def _audio(path: Path, seconds: float, rate: int = SAMPLE_RATE) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, rate), rate)
    return str(path.resolve())


def _by_id(utterances: list[Utterance]) -> dict[str, Utterance]:
    assert len({u.id for u in utterances}) == len(utterances), "duplicate ids"
    return {u.id: u for u in utterances}


def test_librispeech_layout(tmp_path):
    root = tmp_path / "dev-clean"
    expected = {  # id: (text, seconds)
        "19-198-0000": ("NORTHANGER ABBEY", 0.5),
        "19-198-0001": ("THIS LITTLE WORK WAS FINISHED", 1.25),
        "19-227-0000": ("CHAPTER ONE", 0.75),
        "84-121-0003": ("I'M HERE", 2.0),
    }
    for utt, (text, seconds) in expected.items():
        speaker, chapter, _ = utt.split("-")
        folder = root / speaker / chapter
        _audio(folder / f"{utt}.flac", seconds)
        with open(folder / f"{speaker}-{chapter}.trans.txt", "a") as f:
            f.write(f"{utt} {text}\n")
    utterances = _by_id(import_librispeech(root, jobs=1))
    assert set(utterances) == set(expected)
    for utt, (text, seconds) in expected.items():
        u = utterances[utt]
        assert (u.text, u.speaker, u.offset) == (text, utt.split("-")[0], 0.0)
        assert u.duration == pytest.approx(seconds, abs=1e-4)
        assert Path(u.audio_path).is_absolute() and Path(u.audio_path).name == f"{utt}.flac"


def test_librispeech_rejects_a_folder_without_transcripts(tmp_path):
    with pytest.raises(ManifestError, match=str(tmp_path)):
        import_librispeech(tmp_path)


def _kaldi_corpus(tmp_path: Path, relative_to: str) -> Path:
    """corpus/WAVE/<spk>/<reco>.wav and corpus/train/{wav.scp,text,utt2spk} (speechocean762 layout)."""
    corpus = tmp_path / "corpus"
    data = corpus / "train"
    data.mkdir(parents=True)
    base = {"data dir": data, "corpus root": corpus}[relative_to]
    recordings = {"spk1_a": ("spk1", 1.0), "spk1_b": ("spk1", 0.5), "spk2_a": ("spk2", 1.5)}
    scp = []
    for reco, (speaker, seconds) in recordings.items():
        path = corpus / "WAVE" / speaker / f"{reco}.wav"
        _audio(path, seconds)
        scp.append(f"{reco} {os.path.relpath(path, base)}")
    (data / "wav.scp").write_text("\n".join(scp) + "\n")
    return data


@pytest.mark.parametrize("relative_to", ["data dir", "corpus root"])
def test_kaldi_dir_with_relative_wav_scp(tmp_path, relative_to, monkeypatch):
    data = _kaldi_corpus(tmp_path, relative_to)
    monkeypatch.chdir(tmp_path)  # paths must not depend on the working directory
    (data / "text").write_text("spk1_a HELLO  THERE\nspk1_b  YES\nspk2_a GOOD MORNING\n")
    (data / "utt2spk").write_text("spk1_a spk1\nspk1_b spk1\nspk2_a spk2\n")
    utterances = _by_id(import_kaldi_dir(data, jobs=1))
    assert {u: (x.text, x.speaker, x.duration) for u, x in utterances.items()} == {
        "spk1_a": ("HELLO  THERE", "spk1", 1.0),
        "spk1_b": ("YES", "spk1", 0.5),
        "spk2_a": ("GOOD MORNING", "spk2", 1.5),
    }
    assert utterances["spk2_a"].audio_path == str((tmp_path / "corpus/WAVE/spk2/spk2_a.wav").resolve())


def test_kaldi_dir_with_segments(tmp_path):
    data = _kaldi_corpus(tmp_path, "data dir")
    (data / "segments").write_text("utt1 spk1_a 0.00 0.40\nutt2 spk1_a 0.40 1.00\nutt3 spk2_a 0.25 1.50\n")
    (data / "text").write_text("utt1 ONE\nutt2 TWO\nutt3 THREE\n")
    (data / "utt2spk").write_text("utt1 spk1\nutt2 spk1\nutt3 spk2\n")
    utterances = _by_id(import_kaldi_dir(data, jobs=1))
    spans = {u: (x.offset, x.duration, Path(x.audio_path).name, x.text, x.speaker) for u, x in utterances.items()}
    assert spans == {
        "utt1": (0.0, pytest.approx(0.4), "spk1_a.wav", "ONE", "spk1"),
        "utt2": (0.4, pytest.approx(0.6), "spk1_a.wav", "TWO", "spk1"),
        "utt3": (0.25, pytest.approx(1.25), "spk2_a.wav", "THREE", "spk2"),
    }


def test_kaldi_segments_ending_at_minus_one_run_to_the_end_of_the_recording(tmp_path):
    data = _kaldi_corpus(tmp_path, "data dir")
    (data / "segments").write_text("utt1 spk2_a 0.5 -1\n")
    (data / "text").write_text("utt1 ONE\n")
    [utterance] = import_kaldi_dir(data, jobs=1)
    assert (utterance.offset, utterance.duration) == (0.5, pytest.approx(1.0))


BAD_SEGMENTS = {
    "unknown recording": ("utt1 spk1_a 0 0.4\nutt2 nosuch 0 1\n", ":2: recording 'nosuch' is not in wav.scp"),
    "too few fields": ("utt1 spk1_a 0.4\n", ":1: expected '<utt> <recording> <start> <end>'"),
    "too many fields": ("utt1 spk1_a 0 0.4 x\n", ":1: expected '<utt> <recording> <start> <end>'"),
    "not a number": ("utt1 spk1_a zero 0.4\n", ":1: expected '<utt> <recording> <start> <end>'"),
    "end before start": ("utt1 spk1_a 0.4 0.2\n", ":1: needs 0 <= start < end (or end -1), got 0.4 0.2"),
    "negative start": ("utt1 spk1_a -1 0.2\n", ":1: needs 0 <= start < end (or end -1), got -1 0.2"),
}


@pytest.mark.parametrize("case", BAD_SEGMENTS)
def test_bad_segments_line_is_an_error_naming_file_and_line(tmp_path, case, capsys):
    data = _kaldi_corpus(tmp_path, "data dir")
    content, message = BAD_SEGMENTS[case]
    (data / "segments").write_text(content)
    (data / "text").write_text("utt1 ONE\nutt2 TWO\n")
    with pytest.raises(ManifestError) as info:
        import_kaldi_dir(data, jobs=1)
    assert str(info.value) == f"{data / 'segments'}{message}"
    assert main(["prepare", "kaldi", str(data), str(tmp_path / "out.jsonl")]) == 1
    assert capsys.readouterr().err == f"error: {data / 'segments'}{message}\n"
    assert not (tmp_path / "out.jsonl").exists()


def test_segment_past_the_end_of_its_recording_is_skipped_with_a_warning(tmp_path, capsys):
    data = _kaldi_corpus(tmp_path, "data dir")
    (data / "segments").write_text("utt1 spk1_a 0 0.4\nutt2 spk1_b 0.6 -1\n")  # spk1_b lasts 0.5 s
    (data / "text").write_text("utt1 ONE\nutt2 TWO\n")
    assert [u.id for u in import_kaldi_dir(data, jobs=1)] == ["utt1"]
    assert "utt2 starts at 0.6 s, past the end of the audio (0.5 s)" in capsys.readouterr().err


def test_kaldi_dir_skips_utterances_without_text(tmp_path, capsys):
    data = _kaldi_corpus(tmp_path, "data dir")
    (data / "text").write_text("spk1_a HELLO\nspk2_a BYE\n")
    utterances = import_kaldi_dir(data, jobs=1)
    assert sorted(u.id for u in utterances) == ["spk1_a", "spk2_a"]
    assert "1 utterance(s) without text" in capsys.readouterr().err


def test_kaldi_dir_errors_name_the_file(tmp_path):
    with pytest.raises(ManifestError, match=f"{tmp_path}: not a Kaldi data dir"):
        import_kaldi_dir(tmp_path)
    data = _kaldi_corpus(tmp_path, "data dir")
    (data / "text").write_text("spk1_a HELLO\nspk1_b\n")
    with pytest.raises(ManifestError, match=f"{data / 'text'}:2:"):
        import_kaldi_dir(data)


def test_plain_folder(tmp_path):
    root = tmp_path / "recordings"
    _audio(root / "alice" / "greeting.wav", 0.5)
    (root / "alice" / "greeting.txt").write_text("Hello, world!\n")
    _audio(root / "bob" / "note.flac", 1.0, rate=44100)
    (root / "bob" / "note.txt").write_text("remember the milk")
    _audio(root / "bob" / "untranscribed.wav", 0.3)  # no .txt: not training data
    utterances = _by_id(import_folder(root, jobs=1))
    assert {u: (x.text, x.speaker, x.duration) for u, x in utterances.items()} == {
        "alice-greeting": ("Hello, world!", "alice", 0.5),
        "bob-note": ("remember the milk", "bob", 1.0),
    }


def test_plain_folder_refuses_two_files_with_the_same_id(tmp_path):
    _audio(tmp_path / "a-b" / "c.wav", 0.5)
    _audio(tmp_path / "a" / "b-c.wav", 0.5)
    for name in ("a-b/c.txt", "a/b-c.txt"):
        (tmp_path / name).write_text("words")
    with pytest.raises(ManifestError, match=f"{tmp_path / 'a-b' / 'c.wav'}: same utterance id 'a-b-c' as "
                                            f"{tmp_path / 'a' / 'b-c.wav'}"):
        import_folder(tmp_path, jobs=1)


def test_corrupt_audio_is_skipped_with_a_warning(tmp_path, capsys):
    root = tmp_path / "mixed"
    _audio(root / "good.wav", 0.5)
    truncated = root / "truncated.wav"
    truncated.write_bytes((root / "good.wav").read_bytes()[:1000])
    (root / "notes.wav").write_text("not audio at all")
    (root / "empty.wav").write_bytes(b"")
    for name in ("good", "truncated", "notes", "empty"):
        (root / f"{name}.txt").write_text("some words")
    utterances = import_folder(root, jobs=1)
    assert [u.id for u in utterances] == ["good"]
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: skipped")]
    assert len(warnings) == 3
    for name in ("truncated", "notes", "empty"):
        assert any(str(root / f"{name}.wav") in w for w in warnings), name


def test_folder_with_nothing_usable_is_an_error(tmp_path):
    (tmp_path / "a.wav").write_text("not audio")
    (tmp_path / "a.txt").write_text("text")
    with pytest.raises(ManifestError, match="no usable audio"):
        import_folder(tmp_path, jobs=1)
    with pytest.raises(ManifestError, match="not a folder"):
        import_folder(tmp_path / "nope")


def test_write_read_round_trip(tmp_path):
    utterances = [
        Utterance("a", str(tmp_path / "a.wav"), 1.25, "Caf\u00e9 \u201cquoted\u201d", "s1"),
        Utterance("b", str(tmp_path / "long.flac"), 0.5, "second part", "s2", offset=12.75),
    ]
    path = tmp_path / "out" / "set.jsonl"
    write_manifest(utterances, path)
    assert read_manifest(path) == utterances
    assert os.listdir(path.parent) == ["set.jsonl"]  # no temp file left behind
    assert "offset" not in json.loads(path.read_text().splitlines()[0])  # default left out


def test_relative_audio_paths_resolve_against_the_manifest_folder(tmp_path, monkeypatch):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"id": "a", "audio_path": "audio/a.wav", "duration": 1, "text": "t", "speaker": "s"}))
    monkeypatch.chdir("/")
    assert read_manifest(path)[0].audio_path == str(tmp_path / "audio" / "a.wav")


GOOD_LINE = json.dumps({"id": "a", "audio_path": "/a.wav", "duration": 1.0, "text": "t", "speaker": "s"})
BROKEN = {
    "bad json": (GOOD_LINE + "\n" + '{"id": "b", "audio_path": ', ":2: not valid JSON"),
    "not an object": (GOOD_LINE + "\n[1, 2]", ":2: expected a JSON object"),
    "missing field": (GOOD_LINE + "\n\n" + json.dumps({"id": "c", "audio_path": "/c.wav", "duration": 1}),
                      ":3: missing field(s) text, speaker"),
    "negative duration": (GOOD_LINE.replace("1.0", "-1.0"), ":1: duration must be > 0"),
    "zero duration": (GOOD_LINE.replace("1.0", "0"), ":1: duration must be > 0"),
    "duration not a number": (GOOD_LINE.replace("1.0", '"long"'), ":1: duration/offset must be numbers"),
    "empty": ("\n\n", ": manifest is empty"),
    "duplicate id": (GOOD_LINE + "\n" + GOOD_LINE.replace("/a.wav", "/b.wav") + "\n\n" + GOOD_LINE,
                     ":2: duplicate utterance id 'a' (first on line 1)"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_manifest_names_file_and_line(tmp_path, case):
    content, message = BROKEN[case]
    path = tmp_path / "broken.jsonl"
    path.write_text(content)
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert str(info.value).startswith(f"{path}{message}"), str(info.value)


def test_duplicate_ids_are_a_one_line_cli_error(tmp_path, capsys):
    path = tmp_path / "dup.jsonl"
    path.write_text(GOOD_LINE + "\n" + GOOD_LINE + "\n")
    assert main(["lm", "build", "--text", str(path), "--out", str(tmp_path / "lm")]) == 1
    assert capsys.readouterr().err == f"error: {path}:2: duplicate utterance id 'a' (first on line 1)\n"


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match=f"{tmp_path / 'nope.jsonl'}: manifest not found"):
        read_manifest(tmp_path / "nope.jsonl")


def test_read_mix_repeats_manifests_with_unique_ids(tmp_path):
    real = [Utterance("r1", "a.wav", 1.0, "one", "s1"), Utterance("r2", "b.wav", 2.0, "two", "s2")]
    synth = [Utterance("s1", "c.wav", 3.0, "three", "v1")]
    write_manifest(real, tmp_path / "real.jsonl")
    write_manifest(synth, tmp_path / "synth.jsonl")
    mix = read_mix(f"{tmp_path / 'real.jsonl'}*3, {tmp_path / 'synth.jsonl'}")
    assert [u.id for u in mix] == ["r1", "r1~2", "r1~3", "r2", "r2~2", "r2~3", "s1"]
    assert sum(u.duration for u in mix) == 3 * 3.0 + 3.0
    assert {u.audio_path for u in mix if u.id.startswith("r1")} == {str(tmp_path / "a.wav")}
    assert read_mix(str(tmp_path / "synth.jsonl")) == read_manifest(tmp_path / "synth.jsonl")


@pytest.mark.parametrize("spec,message", [("{real}*0", "PATH\\*N"), ("{real}*two", "PATH\\*N"),
                                          ("{real}, {real}", "in both")])
def test_read_mix_errors_name_the_problem(tmp_path, spec, message):
    write_manifest([Utterance("r1", "a.wav", 1.0, "one", "s1")], tmp_path / "real.jsonl")
    with pytest.raises(ManifestError, match=message):
        read_mix(spec.format(real=tmp_path / "real.jsonl"))
