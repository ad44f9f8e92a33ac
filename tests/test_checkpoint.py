"""asr.checkpoint: self-describing checkpoints, atomic saves, clear errors for bad files."""

from __future__ import annotations

import errno
import os
import pickle

import pytest
import torch
from conftest import tiny_model

from asr.atomic import WriteError, atomic_path
from asr.checkpoint import (
    CheckpointError,
    load_model,
    make_checkpoint,
    read_checkpoint,
    save_atomic,
)
from asr.decode import DecodingOptions
from asr.features import FeatureConfig
from asr.model import CTCModel
from asr.text import CharTokenizer


@pytest.fixture
def model() -> CTCModel:
    return tiny_model(n_mels=40, subsample=2, num_layers=2)


FEATURES = FeatureConfig(n_mels=40, hop_ms=12.5)


def test_round_trip_gives_the_same_model(model, tmp_path):
    path = tmp_path / "model.pt"
    save_atomic(make_checkpoint(model, FEATURES, CharTokenizer(), decoding={"decoder": "greedy"}), path)
    loaded = load_model(path)
    assert loaded.features == FEATURES
    assert loaded.tokenizer.vocab == CharTokenizer().vocab
    assert loaded.model.config == model.config
    assert loaded.decoding == DecodingOptions(decoder="greedy")
    assert not loaded.model.training
    assert loaded.frame_seconds == pytest.approx(0.025)  # 12.5 ms hop x 2
    features = torch.randn(3, 57, 40)
    lengths = torch.tensor([57, 40, 9])
    with torch.no_grad():
        expected, expected_lengths = model(features, lengths)
        actual, actual_lengths = loaded.model(features, lengths)
    assert torch.equal(actual, expected) and torch.equal(actual_lengths, expected_lengths)


def test_stored_decoding_options_are_typed_with_files_next_to_the_checkpoint(model, tmp_path):
    elsewhere = tmp_path / "lm" / "words.arpa"
    path = tmp_path / "exp" / "model.pt"
    path.parent.mkdir()
    stored = {"decoder": "beam", "lm_weight": 1, "lexicon": "lexicon.txt", "lm": str(elsewhere)}
    save_atomic(make_checkpoint(model, FEATURES, CharTokenizer(), decoding=stored), path)
    assert load_model(path).decoding == DecodingOptions(decoder="beam", lm_weight=1.0, lm=str(elsewhere),
                                                        lexicon=str(path.parent.resolve() / "lexicon.txt"))
    save_atomic(make_checkpoint(model, FEATURES, CharTokenizer()), path)
    assert load_model(path).decoding == DecodingOptions()  # nothing stored: greedy
    save_atomic(make_checkpoint(model, FEATURES, CharTokenizer(), decoding={"beam_width": 8}), path)
    with pytest.raises(CheckpointError, match="stored decoding options: unknown config field 'beam_width'"):
        load_model(path)


def test_checkpoint_describes_itself(model):
    checkpoint = make_checkpoint(model, FEATURES, CharTokenizer(), train_state={"step": 5})
    assert checkpoint["model_config"]["hidden_size"] == 16
    assert checkpoint["feature_config"]["hop_ms"] == 12.5
    assert checkpoint["vocab"][0] == "<blank>"
    assert checkpoint["torch_version"] == torch.__version__
    assert checkpoint["train_state"] == {"step": 5}
    assert all(t.device.type == "cpu" for t in checkpoint["model_state_dict"].values())


def test_save_atomic_leaves_no_temp_files(model, tmp_path):
    for _ in range(3):  # overwriting goes through the same temp file + rename
        save_atomic(make_checkpoint(model, FEATURES, CharTokenizer()), tmp_path / "last.pt")
    assert os.listdir(tmp_path) == ["last.pt"]


def test_failed_save_keeps_the_previous_file(model, tmp_path):
    path = tmp_path / "last.pt"
    save_atomic(make_checkpoint(model, FEATURES, CharTokenizer()), path)
    before = path.read_bytes()
    with pytest.raises((pickle.PicklingError, AttributeError)):  # which one depends on the object
        save_atomic({"unpicklable": lambda: None}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.pt"]


def test_a_full_disk_while_the_writer_writes_is_one_write_error_and_nothing_changes(tmp_path):
    path = tmp_path / "picture.png"
    path.write_bytes(b"the previous picture")

    def disk_full(tmp):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # no file name: as a writer's write() raises it

    with pytest.raises(WriteError, match="picture.png: cannot write it .No space left on device"):
        with atomic_path(path) as tmp:
            disk_full(tmp)
    assert path.read_bytes() == b"the previous picture" and os.listdir(tmp_path) == ["picture.png"]
    with pytest.raises(FileNotFoundError):  # an error that is not about the output is not disguised as one
        with atomic_path(path):
            open(tmp_path / "some input that is missing")


def _torn(tmp_path, model):
    path = tmp_path / "torn.pt"
    save_atomic(make_checkpoint(model, FEATURES, CharTokenizer()), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _garbage(tmp_path, model):
    path = tmp_path / "garbage.pt"
    path.write_bytes(os.urandom(4096))
    return path


def _text(tmp_path, model):
    path = tmp_path / "notes.pt"
    path.write_text("not a checkpoint")
    return path


def _empty(tmp_path, model):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    return path


def _foreign(tmp_path, model):
    path = tmp_path / "foreign.pt"
    torch.save(model.state_dict(), path)  # a bare state dict: a torch file, but not ours
    return path


def _missing(tmp_path, model):
    return tmp_path / "missing.pt"


BAD = {"torn": (_torn, "not a readable checkpoint"), "garbage": (_garbage, "not a readable checkpoint"),
       "text": (_text, "not a readable checkpoint"), "empty": (_empty, "not a readable checkpoint"),
       "foreign": (_foreign, "not an asr checkpoint"), "missing": (_missing, "checkpoint not found")}


@pytest.mark.parametrize("case", BAD)
def test_bad_checkpoint_files_raise_checkpoint_error(tmp_path, model, case):
    make, reason = BAD[case]
    path = make(tmp_path, model)
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    assert str(info.value).startswith(f"{path}: {reason}")
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError):
        read_checkpoint(path)


def test_a_failed_checkpoint_write_keeps_the_previous_one_and_says_so(tmp_path, monkeypatch):
    import errno

    import asr.checkpoint
    from asr.atomic import WriteError
    from asr.checkpoint import save_atomic

    path = tmp_path / "last.pt"
    save_atomic({"step": 1}, path)
    real_save = torch.save

    def disk_full(obj, f):
        real_save(obj, f)  # a partial temp file, as a full disk leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(asr.checkpoint.torch, "save", disk_full)
    with pytest.raises(WriteError, match="No space left on device.*the previous last.pt is kept"):
        save_atomic({"step": 2}, path)
    assert torch.load(path)["step"] == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
