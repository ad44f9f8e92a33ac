"""speechocean762: download from a mirror on 127.0.0.1, extract, and write train/dev manifests.

The mirror serves a generated archive with the original's layout: speechocean762/
with Kaldi dirs train/ and test/, WAVE/SPEAKERnnnn/*.WAV and resource/scores.json.
"""

from __future__ import annotations

import functools
import hashlib
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import soundfile as sf
from conftest import tone

from asr.cli import main
from asr.corpora.download import DownloadError
from asr.corpora.speechocean import (
    ARCHIVE,
    REPORT_SPEAKERS,
    RESOURCE,
    download_speechocean762,
    prepare_speechocean762,
)
from asr.data.manifest import read_manifest

SPLITS = {  # split -> speaker -> [(utterance, text, seconds)]
    "train": {"0001": [("000010011", "WE CALL IT BEAR", 0.5), ("000010035", "ZERO THREE FIVE ONE", 0.75)],
              "0005": [("000050003", "I LIKE IT", 0.6)]},
    "test": {"0003": [("000030012", "MARK IS GOING TO SEE ELEPHANT", 0.9)],
             "0012": [("000120001", "IT IS RAINING", 0.4), ("000120007", "TWO FOUR SIX", 0.55)]},
}


def write_corpus(root: Path, splits: dict = SPLITS) -> Path:
    """The corpus tree as the original archive unpacks it; returns ROOT/speechocean762."""
    corpus = root / "speechocean762"
    for split, speakers in splits.items():
        kaldi = corpus / split
        kaldi.mkdir(parents=True)
        tables = {name: [] for name in ("wav.scp", "text", "utt2spk", "spk2utt", "spk2gender", "spk2age")}
        for speaker, utterances in speakers.items():
            for utt, text, seconds in utterances:
                wav = corpus / "WAVE" / f"SPEAKER{speaker}" / f"{utt}.WAV"
                wav.parent.mkdir(parents=True, exist_ok=True)
                sf.write(wav, tone(seconds), 16000, subtype="PCM_16", format="WAV")
                tables["wav.scp"].append(f"{utt}\tWAVE/SPEAKER{speaker}/{utt}.WAV")
                tables["text"].append(f"{utt}\t{text}")
                tables["utt2spk"].append(f"{utt}\t{speaker}")
            tables["spk2utt"].append(f"{speaker}\t" + " ".join(u for u, _, _ in utterances))
            tables["spk2gender"].append(f"{speaker}\tm")
            tables["spk2age"].append(f"{speaker}\t8")
        for name, lines in tables.items():
            (kaldi / name).write_text("\n".join(lines) + "\n")
    (corpus / "resource").mkdir()
    (corpus / "resource" / "scores.json").write_text("{}\n")
    (corpus / "README.md").write_text("speechocean762 (generated for tests)\n")
    return corpus


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the server's access log out of the captured stderr
        pass


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """(base URL, archive MD5) of an HTTP server on 127.0.0.1 serving 101/speechocean762.tar.gz."""
    tmp = tmp_path_factory.mktemp("speechocean-mirror")
    corpus = write_corpus(tmp / "src")
    archive = tmp / "www" / str(RESOURCE) / ARCHIVE
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(corpus, arcname="speechocean762")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(tmp / "www")))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hashlib.md5(archive.read_bytes()).hexdigest()
    server.shutdown()
    server.server_close()


def expected(split: str) -> dict[str, tuple[str, str, float]]:
    return {utt: (text, speaker, seconds) for speaker, utts in SPLITS[split].items() for utt, text, seconds in utts}


def test_download_and_prepare_from_mirror(mirror, tmp_path):
    url, md5 = mirror
    root, manifests = tmp_path / "downloads", tmp_path / "data"
    assert main(["prepare", "speechocean762", "--root", str(root), "--mirror", url, "--md5", md5,
                 "--manifest-dir", str(manifests), "--jobs", "1"]) == 0
    for name, split in (("train", "train"), ("dev", "test")):  # the original's test/ becomes dev
        utterances = read_manifest(manifests / f"{name}.jsonl")
        assert {u.id: (u.text, u.speaker, round(u.duration, 3)) for u in utterances} == expected(split)
        for u in utterances:
            assert Path(u.audio_path).is_file() and Path(u.audio_path).suffix == ".WAV"
    # A rerun finds the finished extraction and does not ask the mirror again.
    assert download_speechocean762(root, mirror="http://127.0.0.1:9/unreachable", md5=md5) == root / "speechocean762"


def test_size_is_checked_without_md5(mirror, tmp_path, capsys):
    url, _ = mirror
    with pytest.raises(DownloadError, match="bytes, but the OpenSLR archive has 520810923"):
        download_speechocean762(tmp_path, mirror=url)
    assert not (tmp_path / "speechocean762").exists()
    assert main(["prepare", "speechocean762", "--root", str(tmp_path), "--mirror", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / ARCHIVE}: ") and err.count("\n") == 1


def test_wrong_md5_and_dead_mirror_are_one_line_errors(mirror, tmp_path, capsys):
    url, _ = mirror
    assert main(["prepare", "speechocean762", "--root", str(tmp_path / "a"), "--mirror", url, "--md5", "0" * 32]) == 1
    assert "checksum mismatch" in capsys.readouterr().err
    assert main(["prepare", "speechocean762", "--root", str(tmp_path / "b"), "--mirror", url + "/nowhere"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "404" in err and err.count("\n") == 1


def test_local_copy_with_dev_split(tmp_path):
    splits = {"train": SPLITS["train"], "dev": {"0003": SPLITS["test"]["0003"]}}
    corpus = write_corpus(tmp_path, splits)
    prepared = prepare_speechocean762(corpus, tmp_path / "data", jobs=1)
    assert [u.id for u in prepared["dev"]] == ["000030012"]
    assert read_manifest(tmp_path / "data" / "dev.jsonl") == prepared["dev"]
    assert len(read_manifest(tmp_path / "data" / "train.jsonl")) == 3


def test_dev_is_split_by_speaker_into_report_and_rest(tmp_path):
    corpus = write_corpus(tmp_path)  # dev speakers: 0003 (a reporting speaker) and 0012
    prepared = prepare_speechocean762(corpus, tmp_path / "data", jobs=1)
    assert {u.speaker for u in prepared["dev_report"]} == {"0003"} <= REPORT_SPEAKERS
    assert {u.speaker for u in prepared["dev_rest"]} == {"0012"}
    assert sorted(prepared["dev_report"] + prepared["dev_rest"], key=lambda u: u.id) == \
        sorted(prepared["dev"], key=lambda u: u.id)
    assert read_manifest(tmp_path / "data" / "dev_report.jsonl") == prepared["dev_report"]
    assert read_manifest(tmp_path / "data" / "dev_rest.jsonl") == prepared["dev_rest"]


def test_corpus_dir_needs_manifest_dir_and_the_layout(tmp_path, capsys):
    assert main(["prepare", "speechocean762", "--corpus-dir", str(tmp_path)]) == 1
    assert "--manifest-dir" in capsys.readouterr().err
    (tmp_path / "train").mkdir()
    assert main(["prepare", "speechocean762", "--corpus-dir", str(tmp_path), "--manifest-dir", str(tmp_path)]) == 1
    assert "no dev/ or test/" in capsys.readouterr().err
