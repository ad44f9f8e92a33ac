"""Download, verify, extract and prepare LibriSpeech from a mirror served on 127.0.0.1.

The mirror holds generated archives in the real layout (recipes/librispeech/local/
make_mini_mirror.py: LibriSpeech/<subset>/<spk>/<chapter>/*.flac + *.trans.txt with
espeak-ng speech). The server honours Range requests and can cut a response short,
like a dropped connection.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import soundfile as sf

from asr.cli import main
from asr.corpora.download import DownloadError, download_and_extract, extract
from asr.corpora.librispeech import (
    SUBSETS,
    download_librispeech,
    prepare_librispeech,
    read_md5sums,
)
from asr.data.manifest import ManifestError, read_manifest

MIRROR_SCRIPT = Path(__file__).parents[1] / "recipes/librispeech/local/make_mini_mirror.py"


def load_mirror_maker():
    spec = importlib.util.spec_from_file_location("make_mini_mirror", MIRROR_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class MirrorHandler(BaseHTTPRequestHandler):
    """GET files under server.root; `Range: bytes=N-` gives a 206; server.cut_after
    (one-shot) sends only that many body bytes, then closes the connection."""

    def do_GET(self):
        server = self.server
        path = server.root / self.path.lstrip("/")
        server.requests.append((self.path, self.headers.get("Range")))
        if not path.is_file():
            self.send_error(404)
            return
        data, start = path.read_bytes(), 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after is not None:
            body, server.cut_after = body[: server.cut_after], None
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """(mirror folder, {subset: {utt id: (text, seconds)}}) with train-clean-5 and dev-clean-2."""
    root = tmp_path_factory.mktemp("mirror")
    contents = load_mirror_maker().make_mirror(root, speakers=2, chapters=1, utterances=2)
    return root, contents


@pytest.fixture
def server(mirror):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), MirrorHandler)
    httpd.root, httpd.requests, httpd.cut_after = mirror[0], [], None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_prepare_downloads_verifies_extracts_and_writes_manifests_then_skips(mirror, server, tmp_path, capsys):
    mirror_dir, contents = mirror
    args = ["prepare", "librispeech", "--subsets", "dev-clean-2", "train-clean-5", "--root", str(tmp_path / "dl"),
            "--mirror", server.url, "--checksums", str(mirror_dir / "md5sum.txt"),
            "--manifest-dir", str(tmp_path / "data"), "--jobs", "1"]
    assert main(args) == 0
    assert sorted(path for path, _ in server.requests) == ["/31/dev-clean-2.tar.gz", "/31/train-clean-5.tar.gz"]
    for subset, expected in contents.items():
        assert (tmp_path / f"dl/LibriSpeech/{subset}").is_dir()
        utterances = read_manifest(tmp_path / f"data/{subset}.jsonl")
        assert {u.id: u.text for u in utterances} == {utt: text for utt, (text, _) in expected.items()}
        for u in utterances:
            assert u.duration == pytest.approx(expected[u.id][1], abs=1e-3)
            assert u.duration == pytest.approx(sf.info(u.audio_path).duration, abs=1e-3)
            assert u.speaker == u.id.split("-")[0]
    manifests = {p: p.stat().st_mtime_ns for p in (tmp_path / "data").iterdir()}

    capsys.readouterr()
    assert main(args) == 0  # second run: nothing fetched, nothing rewritten
    assert len(server.requests) == 2
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "data").iterdir()} == manifests
    err = capsys.readouterr().err
    assert "already extracted" in err and "already prepared" in err


def test_interrupted_download_resumes_with_range(mirror, server, tmp_path):
    mirror_dir, contents = mirror
    checksums = read_md5sums(mirror_dir / "md5sum.txt")
    size = (mirror_dir / "31/dev-clean-2.tar.gz").stat().st_size
    server.cut_after = size // 2
    with pytest.raises(DownloadError, match=f"connection closed after {size // 2} of {size} bytes"):
        download_librispeech(["dev-clean-2"], tmp_path, mirror=server.url, checksums=checksums)
    assert (tmp_path / "dev-clean-2.tar.gz.part").stat().st_size == size // 2
    assert not (tmp_path / "LibriSpeech").exists()

    download_librispeech(["dev-clean-2"], tmp_path, mirror=server.url, checksums=checksums)
    assert server.requests[-1] == ("/31/dev-clean-2.tar.gz", f"bytes={size // 2}-")
    assert (tmp_path / "dev-clean-2.tar.gz").read_bytes() == (mirror_dir / "31/dev-clean-2.tar.gz").read_bytes()
    prepared = prepare_librispeech(["dev-clean-2"], tmp_path, tmp_path / "data", jobs=1)
    assert {u.id for u in prepared["dev-clean-2"]} == set(contents["dev-clean-2"])


def test_wrong_checksum_is_an_error_and_leaves_nothing(server, tmp_path, capsys):
    # Without --checksums the published MD5 applies, which the generated archive cannot match.
    args = ["prepare", "librispeech", "--subsets", "dev-clean-2", "--root", str(tmp_path), "--mirror", server.url]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "checksum mismatch" in err and SUBSETS["dev-clean-2"][1] in err and "dev-clean-2.tar.gz" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the bad download was deleted
    with pytest.raises(ManifestError, match="not downloaded and extracted completely"):
        prepare_librispeech(["dev-clean-2"], tmp_path, tmp_path / "data")


def test_truncated_archive_is_an_error_and_gives_no_manifest(mirror, server, tmp_path):
    data = (mirror[0] / "31/train-clean-5.tar.gz").read_bytes()
    truncated = data[: len(data) * 2 // 3]
    (server.root / "cut").mkdir(exist_ok=True)
    (server.root / "cut/train-clean-5.tar.gz").write_bytes(truncated)
    md5 = hashlib.md5(truncated).hexdigest()  # the mirror's checksum is of the cut file, so only extraction can tell
    with pytest.raises(DownloadError, match="train-clean-5.tar.gz: archive is truncated or corrupt"):
        download_and_extract(f"{server.url}/cut/train-clean-5.tar.gz", md5, tmp_path)
    assert not list(tmp_path.glob(".*.done"))
    with pytest.raises(ManifestError, match="not downloaded and extracted completely"):
        prepare_librispeech(["train-clean-5"], tmp_path, tmp_path / "data")
    assert not (tmp_path / "data").exists()


def tar_with(tmp_path: Path, add) -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        add(tar)
    return path


def add_file(tar: tarfile.TarFile, name: str, data: bytes = b"x") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    tar.addfile(info)


@pytest.mark.parametrize("add", [
    lambda tar: add_file(tar, "../escaped.txt"),
    lambda tar: add_file(tar, "/tmp/absolute-escaped.txt"),
    lambda tar: add_symlink(tar, "LibriSpeech/link", "../../escaped.txt"),
    lambda tar: add_symlink(tar, "LibriSpeech/link", "/etc/passwd"),
], ids=["dotdot", "absolute", "symlink-out", "symlink-absolute"])
def test_tar_members_outside_the_target_are_refused(tmp_path, add):
    archive = tar_with(tmp_path, add)
    dest = tmp_path / "a" / "b"
    with pytest.raises(DownloadError, match="evil.tar.gz: refusing unsafe archive member"):
        extract(archive, dest)
    assert not (tmp_path / "a" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/absolute-escaped.txt").exists() and not (dest / "tmp").exists()
    assert not (dest / "LibriSpeech" / "link").is_symlink()


def test_zip_member_outside_the_target_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../escaped.txt", "bad")
    with pytest.raises(DownloadError, match="refusing unsafe archive member '../escaped.txt'"):
        extract(archive, tmp_path / "dest")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "dest" / "ok.txt").exists()


def test_subset_table_has_every_subset_with_an_md5():
    assert set(SUBSETS) == {"dev-clean", "dev-other", "test-clean", "test-other", "train-clean-100",
                            "train-clean-360", "train-other-500", "dev-clean-2", "train-clean-5"}
    for subset, (resource, md5) in SUBSETS.items():
        assert resource == (31 if subset in ("dev-clean-2", "train-clean-5") else 12)
        assert len(md5) == 32 and int(md5, 16) >= 0


def test_missing_or_malformed_checksums_file_is_a_one_line_error(tmp_path, capsys):
    args = ["prepare", "librispeech", "--subsets", "dev-clean-2", "--root", str(tmp_path / "dl"),
            "--checksums", str(tmp_path / "md5sum.txt")]
    assert main(args) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'md5sum.txt'}: cannot read checksums " \
                                      "(No such file or directory)\n"
    (tmp_path / "md5sum.txt").write_text("d41d8cd98f00b204e9800998ecf8427e  dev-clean-2.tar.gz\nnot a checksum\n")
    with pytest.raises(DownloadError, match=f"{tmp_path / 'md5sum.txt'}:2: expected"):
        read_md5sums(tmp_path / "md5sum.txt")
    assert not (tmp_path / "dl").exists()  # nothing was downloaded
