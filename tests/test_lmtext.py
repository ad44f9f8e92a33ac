"""Fetch and check the LM text corpus (asr.corpora.lmtext) from a mirror served on 127.0.0.1.

The mirror holds a few tiny made-up files in the real layout (gutenberg/NUMBER.txt.gz,
gutenberg/catalog.tsv, common_voice_sentences.txt, README.md); the test pins their
checksums itself, as a private mirror would. The server (test_download.MirrorHandler)
honours Range requests and can cut a response short, like a dropped connection.
The real copy is checked only when ASR_TEXT_DIR names one.
"""

from __future__ import annotations

import gzip
import os
import shutil
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from test_download import MirrorHandler

from asr.cli import main
from asr.corpora.download import DownloadError
from asr.corpora.lmtext import PINNED, download_text, pin_text, prepare_text, read_pinned, write_pinned


@pytest.fixture
def mirror(tmp_path) -> Path:
    """A folder in the corpus's layout, with made-up text."""
    root = tmp_path / "mirror"
    (root / "gutenberg").mkdir(parents=True)
    (root / "README.md").write_text("# made-up text for a test\n")
    sentences = "".join(f"Sentence number {i} is read aloud.\n" for i in range(2000))  # ~70 kB: worth cutting
    (root / "common_voice_sentences.txt").write_text(sentences)
    for number, text in (("11", "Alice was beginning to get very tired.\n"), ("1342", "It is a truth universally.\n")):
        (root / f"gutenberg/{number}.txt.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    (root / "gutenberg/catalog.tsv").write_text("file\tebook\tauthor\ttitle\twords\n")
    return root


@pytest.fixture
def server(mirror):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), MirrorHandler)
    httpd.root, httpd.requests, httpd.cut_after = mirror, [], None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _pinned_file(mirror: Path, tmp_path: Path) -> Path:
    path = tmp_path / "pinned.tsv"
    write_pinned(pin_text(mirror), path, comment="the test's mirror")
    return path


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_fetches_every_file_verified_then_skips_and_checks_the_copy(mirror, server, tmp_path, capsys):
    pinned = _pinned_file(mirror, tmp_path)
    base = ["prepare", "text", "--mirror", server.url, "--pinned", str(pinned)]
    root = tmp_path / "downloads"
    assert main([*base, "--root", str(root), "--dry-run"]) == 0
    expected = sorted(f"/{path}" for path in _tree(mirror))
    assert sorted(capsys.readouterr().out.split()) == [server.url + path for path in expected]
    assert server.requests == [] and not root.exists()  # a dry run fetches nothing

    assert main([*base, "--root", str(root)]) == 0
    assert capsys.readouterr().out.strip() == str(root / "text")
    assert sorted(path for path, _ in server.requests) == expected
    assert _tree(root / "text") == _tree(mirror)  # the same files, the same layout

    assert main([*base, "--root", str(root)]) == 0  # again: everything there, nothing fetched
    assert main([*base, "--root", str(root), "--dry-run"]) == 0
    assert len(server.requests) == len(expected) and capsys.readouterr().out.split() == [str(root / "text")]
    assert main(["prepare", "text", "--text-dir", str(root / "text"), "--pinned", str(pinned)]) == 0


def test_a_corrupted_file_is_an_error_and_is_not_kept(mirror, server, tmp_path, capsys):
    pinned = read_pinned(_pinned_file(mirror, tmp_path))
    (mirror / "gutenberg/1342.txt.gz").write_bytes(gzip.compress(b"It is a lie universally.\n", mtime=0))
    expected = next(p.sha256 for p in pinned if p.path == "gutenberg/1342.txt.gz")
    with pytest.raises(DownloadError, match=r"gutenberg/1342\.txt\.gz: checksum mismatch \(SHA256 [0-9a-f]{64}, "
                                            f"expected {expected}"):
        download_text(tmp_path / "dl", server.url, pinned)
    fetched = tmp_path / "dl/text"
    assert not (fetched / "gutenberg/1342.txt.gz").exists() and not list(fetched.rglob("*.part"))
    assert (fetched / "gutenberg/11.txt.gz").is_file()  # what came before it stays, verified

    (mirror / "gutenberg/1342.txt.gz").write_bytes(gzip.compress(b"It is a truth universally.\n", mtime=0))
    server.requests.clear()
    assert download_text(tmp_path / "dl", server.url, pinned) == fetched  # only what is missing is fetched
    assert [path for path, _ in server.requests] == ["/gutenberg/1342.txt.gz", "/gutenberg/catalog.tsv"]


def test_a_file_missing_on_the_mirror_is_one_error_line(mirror, server, tmp_path, capsys):
    pinned = _pinned_file(mirror, tmp_path)
    (mirror / "common_voice_sentences.txt").unlink()
    args = ["prepare", "text", "--root", str(tmp_path / "dl"), "--mirror", server.url, "--pinned", str(pinned)]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"error: {server.url}/common_voice_sentences.txt: HTTP error 404 Not Found"
    assert not (tmp_path / "dl/text/common_voice_sentences.txt").exists()


def test_an_interrupted_download_resumes_with_range(mirror, server, tmp_path):
    pinned = read_pinned(_pinned_file(mirror, tmp_path))
    pinned.sort(key=lambda p: p.path != "common_voice_sentences.txt")  # fetched first: the response cut
    size = (mirror / "common_voice_sentences.txt").stat().st_size
    server.cut_after = size // 2
    with pytest.raises(DownloadError, match=f"connection closed after {size // 2} of {size} bytes; run again"):
        download_text(tmp_path, server.url, pinned)
    part = tmp_path / "text/common_voice_sentences.txt.part"
    assert part.stat().st_size == size // 2 and not part.with_suffix("").exists()

    download_text(tmp_path, server.url, pinned)
    assert ("/common_voice_sentences.txt", f"bytes={size // 2}-") in server.requests
    assert _tree(tmp_path / "text") == _tree(mirror)


def test_a_copy_on_disk_is_used_only_when_every_file_is_unchanged(mirror, tmp_path, capsys):
    pinned = _pinned_file(mirror, tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(mirror, copy)
    (copy / "notes.txt").write_text("other files are left alone\n")
    assert prepare_text(copy, read_pinned(pinned)) == copy
    (copy / "gutenberg/11.txt.gz").unlink()
    (copy / "README.md").write_text("# edited\n")
    assert main(["prepare", "text", "--text-dir", str(copy), "--pinned", str(pinned)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: {copy}: not the pinned LM text: 1 missing (gutenberg/11.txt.gz); "
                          "1 changed (README.md);")
    assert main(["prepare", "text", "--text-dir", str(tmp_path / "nowhere"), "--pinned", str(pinned)]) == 1
    assert "no such folder" in capsys.readouterr().err


def test_without_a_mirror_or_a_copy_it_says_what_to_pass(tmp_path, capsys):
    assert main(["prepare", "text", "--root", str(tmp_path), "--dry-run"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no public copy of the LM text") and "--mirror" in err and "--text-dir" in err


def test_a_malformed_pinned_list_is_one_error_line(tmp_path, capsys):
    bad = tmp_path / "pinned.tsv"
    bad.write_text("path\tbytes\tsha256\n../etc/passwd\t1\t" + "0" * 64 + "\n")
    assert main(["prepare", "text", "--text-dir", str(tmp_path), "--pinned", str(bad)]) == 1
    assert capsys.readouterr().err.strip() == (f"error: {bad}:2: expected 'PATH<TAB>BYTES<TAB>SHA256' "
                                               "with a relative PATH")


def test_the_bundled_list_pins_the_books_the_sentences_and_their_catalog():
    pinned = read_pinned(PINNED)
    paths = [p.path for p in pinned]
    books = [p for p in paths if p.startswith("gutenberg/") and p.endswith(".txt.gz")]
    assert len(books) == 851
    assert {"README.md", "common_voice_sentences.txt", "gutenberg/catalog.tsv"} <= set(paths)
    assert len(set(paths)) == len(paths) == 854 and all(p.bytes > 0 for p in pinned)
    assert 100e6 < sum(p.bytes for p in pinned) < 110e6  # about 104 MB, as README says


@pytest.mark.skipif(not os.environ.get("ASR_TEXT_DIR"), reason="ASR_TEXT_DIR (a copy of the LM text) is not set")
def test_the_real_copy_matches_the_bundled_list():
    assert prepare_text(os.environ["ASR_TEXT_DIR"]) == Path(os.environ["ASR_TEXT_DIR"])
