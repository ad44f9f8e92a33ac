"""Property tests (hypothesis) of every reader of user files and of the writers: whatever the bytes,
the result is a value or one AsrError (an `error:` line), never another exception, never a hang.

Each property runs a few dozen examples in the quick loop and a few hundred under `-m slow`.
Readers: manifests, the Kaldi / LibriSpeech / folder importers, the YAML config loader, the audio
loader (random and truncated bytes behind every audio extension); writers: every transcript format.
"""

from __future__ import annotations

import contextlib
import math
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asr.audio import AUDIO_EXTENSIONS, audio_info, load_audio
from asr.config import load_yaml, merge
from asr.configs import RunConfig
from asr.corpora.importers import import_folder, import_kaldi_dir, import_librispeech
from asr.data.manifest import read_manifest
from asr.decode import Hypothesis, Word
from asr.errors import AsrError
from asr.writers import CLI_FORMATS, transcript_file, transcript_line

BUDGETS = [20, pytest.param(300, marks=pytest.mark.slow)]
HANG_SECONDS = 20

# Text that looks like what the readers expect, and bytes that do not.
_TOKENS = st.sampled_from(["utt1", "a.wav", "0.5", "-1", "nan", "Infinity", "1e309", "{", "}", '"id"', ":", ",",
                           "\t", " ", "\n", "|", "[", "]", "null", "true", '"duration"', "\u00e9", "\x00", "#"])
TEXTISH = st.lists(_TOKENS, max_size=40).map("".join).map(str.encode)
CONTENT = st.one_of(TEXTISH, st.binary(max_size=300))


@contextlib.contextmanager
def _no_hang(seconds: int = HANG_SECONDS):
    """Fail (TimeoutError) instead of waiting forever."""
    def alarm(*_):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _value_or_asr_error(fn, *args):
    with _no_hang():
        try:
            return fn(*args)
        except AsrError as err:
            assert str(err) and "\n" not in str(err).strip(), repr(err)  # one line
            return err


def _fuzz(examples: int):
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("examples", BUDGETS)
def test_manifest_reader(examples):
    @_fuzz(examples)
    @given(lines=st.lists(st.one_of(CONTENT, st.fixed_dictionaries(
        {"id": st.text(max_size=5), "audio_path": st.text(max_size=8),
         "duration": st.one_of(st.floats(), st.text(max_size=3), st.none()), "text": st.text(max_size=10),
         "speaker": st.integers()}).map(lambda d: __import__("json").dumps(d).encode())), max_size=5))
    def check(lines):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.jsonl"
            path.write_bytes(b"\n".join(lines))
            _value_or_asr_error(read_manifest, path)

    check()


@pytest.mark.parametrize("examples", BUDGETS)
def test_importers(examples):
    @_fuzz(examples)
    @given(wav_scp=CONTENT, text=CONTENT, segments=st.one_of(st.none(), CONTENT), utt2spk=st.one_of(st.none(), CONTENT),
           trans=CONTENT, transcript=CONTENT)
    def check(wav_scp, text, segments, utt2spk, trans, transcript):
        with tempfile.TemporaryDirectory() as tmp:
            kaldi = Path(tmp) / "kaldi"
            kaldi.mkdir()
            for name, content in (("wav.scp", wav_scp), ("text", text), ("segments", segments),
                                  ("utt2spk", utt2spk)):
                if content is not None:
                    (kaldi / name).write_bytes(content)
            _value_or_asr_error(import_kaldi_dir, kaldi, 1)
            chapter = Path(tmp) / "libri" / "1" / "2"
            chapter.mkdir(parents=True)
            (chapter / "1-2.trans.txt").write_bytes(trans)
            _value_or_asr_error(import_librispeech, Path(tmp) / "libri", 1)
            folder = Path(tmp) / "folder"
            folder.mkdir()
            sf.write(folder / "a.wav", np.zeros(1600, dtype=np.float32), 16000)
            (folder / "a.txt").write_bytes(transcript)
            _value_or_asr_error(import_folder, folder, 1)

    check()


@pytest.mark.parametrize("examples", BUDGETS)
def test_config_loader(examples):
    yaml_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6)),
                               lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from(
                                                           ["train", "model", "lr", "epochs", "hidden_size",
                                                            "speeds", "features", "n_mels", "x"]), inner, max_size=3)),
                               max_leaves=8)

    @_fuzz(examples)
    @given(content=st.one_of(CONTENT, yaml_values.map(lambda v: __import__("yaml").safe_dump(v).encode())))
    def check(content):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "c.yaml"
            path.write_bytes(content)

            def load():
                config = merge(RunConfig(), load_yaml(path))
                config.train.check()
                config.model.check()
                return config

            _value_or_asr_error(load)

    check()


@pytest.fixture(scope="module")
def real_audio(tmp_path_factory) -> dict[str, bytes]:
    """A second of noise in each format soundfile writes: the source of truncated files."""
    out = {}
    folder = tmp_path_factory.mktemp("formats")
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    for ext, fmt in ((".wav", "WAV"), (".flac", "FLAC"), (".ogg", "OGG")):
        path = folder / f"n{ext}"
        sf.write(path, noise, 16000, format=fmt)
        out[ext] = path.read_bytes()
    return out


@pytest.mark.parametrize("examples", BUDGETS)
def test_audio_loader(examples, real_audio):
    @_fuzz(examples)
    @given(ext=st.sampled_from(AUDIO_EXTENSIONS), data=st.data())
    def check(ext, data):
        source = real_audio.get(ext)
        if source is not None and data.draw(st.booleans()):
            content = source[: data.draw(st.integers(0, len(source)))]  # truncated
        else:
            content = data.draw(st.binary(max_size=2000))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"x{ext}"
            path.write_bytes(content)
            info = _value_or_asr_error(audio_info, path)
            audio = _value_or_asr_error(load_audio, path)
            if isinstance(audio, np.ndarray):
                assert audio.ndim == 1 and np.isfinite(audio).all()
            assert isinstance(info, (tuple, AsrError))

    check()


@pytest.mark.parametrize("examples", BUDGETS)
def test_writers(examples):
    times = st.floats(min_value=0, max_value=1e6, allow_nan=False)
    words = st.builds(Word, st.text(min_size=1, max_size=8), times, times, st.floats(0, 1))

    @_fuzz(examples)
    @given(words=st.lists(words, max_size=30), fmt=st.sampled_from(CLI_FORMATS), name=st.text(max_size=10))
    def check(words, fmt, name):
        hyp = Hypothesis(" ".join(w.text for w in words), words=sorted(words, key=lambda w: w.start))
        with _no_hang():
            line, file = transcript_line(name, hyp, fmt), transcript_file(name, hyp, fmt)
        assert isinstance(line, str) and file.endswith("\n") and not math.isnan(len(file))

    check()
