"""asr.trie: the cached lexicon gives the transcripts of a fresh one, a changed lexicon or LM
is read again, and a damaged, foreign or unwritable cache is never used (and never fatal)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from asr import trie
from asr.audio import load_audio
from asr.checkpoint import load_model
from asr.decode import BeamSearchDecoder, DecoderError, DecodingOptions
from asr.features import LogMel
from asr.pretrained import default_model_path
from asr.text import WORD_SEPARATOR, CharTokenizer

TOKENIZER = CharTokenizer()
TOKENS = [WORD_SEPARATOR if t == " " else t for t in TOKENIZER.vocab]


def _spelled(text: str) -> torch.Tensor:
    """(1, frames, vocab) log-probs that spell `text` clearly: a character, then two blanks."""
    rows = []
    for char in text:
        for symbol in (char, "<blank>", "<blank>"):
            row = torch.full((len(TOKENIZER),), 0.02 / (len(TOKENIZER) - 1))
            row[TOKENIZER.vocab.index(symbol)] = 0.98
            rows.append(row / row.sum())
    return torch.stack(rows).log().unsqueeze(0)


def _decode(options: DecodingOptions, log_probs: torch.Tensor, cache: bool = True) -> str:
    decoder = BeamSearchDecoder(options, TOKENIZER, cache=cache)
    return decoder.decode(log_probs, torch.tensor([log_probs.shape[1]]))[0].text


def _caches(folder) -> list:
    return sorted(folder.glob(f"*{trie.CACHE_SUFFIX}"))


@pytest.fixture
def bundled_copy(tmp_path):
    """The bundled model's LM and 50,000-word lexicon, copied where a test may write caches."""
    folder = default_model_path().parent
    for name in ("lexicon.txt", "lm.bin"):
        shutil.copy2(folder / name, tmp_path / name)
    return tmp_path


def test_cached_lexicon_gives_the_transcripts_of_a_fresh_one(bundled_copy, speech_dir, monkeypatch):
    """The bundled model on synthesized speech, decoded with its own beam settings: a decoder
    built without the cache, one that writes it and one that only reads it agree on everything."""
    loaded = load_model(default_model_path())
    logmel = LogMel(loaded.features)
    with torch.inference_mode():
        emissions = [loaded.model(f[None], torch.tensor([f.shape[0]])) for f in
                     (logmel(torch.from_numpy(load_audio(p))) for p in sorted(speech_dir.glob("*.wav")))]
    options = DecodingOptions(**{**vars(loaded.decoding), "lexicon": str(bundled_copy / "lexicon.txt"),
                                 "lm": str(bundled_copy / "lm.bin")})

    def transcripts(cache: bool):
        decoder = BeamSearchDecoder(options, loaded.tokenizer, cache=cache)
        return [(h.text, h.tokens, h.frames, round(h.score, 3)) for lp, n in emissions for h in decoder.decode(lp, n)]

    fresh = transcripts(cache=False)
    assert _caches(bundled_copy) == []
    writing = transcripts(cache=True)
    assert len(_caches(bundled_copy)) == 1
    monkeypatch.setattr(trie, "parse_lexicon", lambda *a: pytest.fail("the cache was not used"))
    reading = transcripts(cache=True)
    assert fresh == writing == reading
    assert any(text for text, *_ in fresh)  # real words came out, so there was something to compare


def test_a_changed_lexicon_is_read_again_and_its_old_cache_removed(tmp_path):
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("cat\tc a t |\nhat\th a t |\n")
    options = DecodingOptions(decoder="beam", beam_size=8, lexicon=str(lexicon))
    assert _decode(options, _spelled("cab")) == "cat"
    first = _caches(tmp_path)
    lexicon.write_text("cab\tc a b |\nhat\th a t |\n")  # same size: only the bytes tell
    assert _decode(options, _spelled("cab")) == "cab"
    second = _caches(tmp_path)
    assert len(first) == len(second) == 1 and first != second


def test_the_key_follows_the_lexicon_the_lm_and_the_tokens(tmp_path):
    lexicon, lm = tmp_path / "lexicon.txt", tmp_path / "lm.arpa"
    lexicon.write_text("cat\tc a t |\n")
    lm.write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\tcat\n\n\\end\\\n")
    key = trie.cache_key(lexicon, TOKENS, lm)
    assert trie.cache_key(lexicon, TOKENS, lm) == key
    assert trie.cache_key(lexicon, TOKENS, None) != key
    assert trie.cache_key(lexicon, list(reversed(TOKENS)), lm) != key
    stat = lm.stat()
    os.utime(lm, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # rewritten in place, same bytes
    assert trie.cache_key(lexicon, TOKENS, lm) != key


def _scores(words: list[str]) -> np.ndarray:
    return np.arange(len(words), dtype=np.float32)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "another key", "bad token id"])
def test_a_damaged_or_foreign_cache_is_ignored_and_rewritten(tmp_path, damage):
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("cat\tc a t |\nhat\th a t |\nhat\th a t t |\n")
    expected = trie.read_lexicon(lexicon, TOKENS, None, _scores, use_cache=False)
    key = trie.cache_key(lexicon, TOKENS, None)
    path = trie.cache_paths(lexicon, key)[0]
    trie.read_lexicon(lexicon, TOKENS, None, _scores)
    good = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    else:
        cached = trie.load_cached(path, key, len(TOKENS))
        if damage == "bad token id":
            cached.tokens[0] = len(TOKENS) + 5
        trie.save_cache(cached, "0" * 32 if damage == "another key" else key, [path])
    again = trie.read_lexicon(lexicon, TOKENS, None, _scores)
    assert again.words == expected.words == ["cat", "hat"]
    for name in ("tokens", "offsets", "word_ids", "scores"):
        assert np.array_equal(getattr(again, name), getattr(expected, name)), name
    assert trie.load_cached(path, key, len(TOKENS)) is not None  # rewritten, good again


def test_a_read_only_model_folder_caches_in_the_user_folder_or_in_memory(tmp_path, monkeypatch):
    lexicon = tmp_path / "model" / "lexicon.txt"
    lexicon.parent.mkdir()
    lexicon.write_text("cat\tc a t |\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    real_atomic_path = trie.atomic_path

    def refuse_model_folder(path):
        if lexicon.parent in path.parents:
            raise PermissionError(13, "Permission denied")
        return real_atomic_path(path)

    monkeypatch.setattr(trie, "atomic_path", refuse_model_folder)
    assert trie.read_lexicon(lexicon, TOKENS, None, _scores).words == ["cat"]
    assert _caches(lexicon.parent) == [] and len(_caches(tmp_path / "xdg" / "asr" / "tries")) == 1
    monkeypatch.setattr(trie, "parse_lexicon", lambda *a: pytest.fail("the user cache was not used"))
    assert trie.read_lexicon(lexicon, TOKENS, None, _scores).words == ["cat"]

    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg2"))
    monkeypatch.setattr(trie, "atomic_path", lambda path: (_ for _ in ()).throw(PermissionError(13, "denied")))
    assert trie.read_lexicon(lexicon, TOKENS, None, _scores).words == ["cat"]  # built in memory


@pytest.mark.parametrize("line, message", [("cat\tc a 1 |", "line 2: '1' is not one of the model's tokens"),
                                           ("dog", "line 2: 'dog' has no spelling")])
def test_a_lexicon_line_the_tokens_cannot_spell_is_named(tmp_path, line, message):
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text(f"hat\th a t |\n{line}\n")
    with pytest.raises(DecoderError, match=f"{lexicon}: {message}"):
        BeamSearchDecoder(DecodingOptions(decoder="beam", lexicon=str(lexicon)), TOKENIZER)
