"""asr.synth.prompts: prompt sources from text folders and manifests, the mix, the dev/train text split."""

from __future__ import annotations

import gzip
from collections import Counter

import numpy as np
import pytest

from asr.cli import main
from asr.data.manifest import Utterance, write_manifest
from asr.synth.prompts import (
    GRAMMAR,
    PromptError,
    PromptSource,
    grammar_sentence,
    is_dev_sentence,
    load_sources,
    parse_source_spec,
    pick_prompt,
    split_source,
)
from asr.text import normalize_text

BOOK = """CHAPTER I.
It was a cold morning. Mr. Brown opened the door, and the dog ran out into the snow!
Yes.
The children laughed at the dog, and their mother called them in for breakfast. The dog ran out into the snow.
This one sentence is far too long to be a prompt because it goes on and on with more and more words \
until it has well over twenty five of them.
"""


@pytest.fixture
def text_dir(tmp_path):
    folder = tmp_path / "books"
    folder.mkdir()
    with gzip.open(folder / "1.txt.gz", "wt", encoding="utf-8") as f:
        f.write(BOOK)
    with gzip.open(folder / "2.txt.gz", "wt", encoding="utf-8") as f:
        f.write("The dog ran out into the snow.\nWe call it bear. Please close the window now.\n")
    dev = tmp_path / "dev.jsonl"
    write_manifest([Utterance("d1", "x.wav", 1.0, "PLEASE CLOSE THE WINDOW NOW", "s")], dev)
    return folder, dev


def test_a_folder_of_gzipped_books_gives_normalized_filtered_unique_sentences(text_dir):
    folder, dev = text_dir
    (source,) = load_sources([f"{folder}:2"], grammar_weight=0, exclude_files=[str(dev)])
    assert source.weight == 2.0
    sentences = source.sentences
    assert "it was a cold morning" in sentences  # normalized: lower case, no punctuation
    assert all(s == normalize_text(s) for s in sentences)
    assert all(3 <= len(s.split()) <= 25 for s in sentences)  # "yes" and the long one are out
    assert not any(s.startswith("chapter") for s in sentences)  # headings are dropped
    assert len(sentences) == len(set(sentences)) and "the dog ran out into the snow" in sentences
    assert "please close the window now" not in sentences  # dev text never becomes a prompt
    assert "we call it bear" in sentences


def test_a_pool_is_a_seeded_sample(text_dir):
    folder, _ = text_dir
    everything = load_sources([str(folder)], 0)[0].sentences
    pool = load_sources([str(folder)], 0, pool=3, seed=1)[0].sentences
    assert len(pool) == 3 and set(pool) <= set(everything)
    assert pool == load_sources([str(folder)], 0, pool=3, seed=1)[0].sentences


def test_manifest_sources_keep_short_transcripts(tmp_path):
    manifest = tmp_path / "train.jsonl"
    write_manifest([Utterance(f"u{i}", "x.wav", 1.0, text, "s") for i, text in
                    enumerate(["BEAR", "WE CALL IT BEAR", "WE CALL IT BEAR"])], manifest)
    (source, grammar) = load_sources([str(manifest)], grammar_weight=0.5)
    assert source.sentences == ("bear", "we call it bear") and grammar == PromptSource(GRAMMAR, 0.5)


@pytest.mark.parametrize("content, message", [
    (b"", "no usable sentence"),
    (b"\x00\x01\x02\xff\xfe binary \x00" * 50, "cannot read text"),
    ("caf\u00e9 au lait is nice today".encode("latin-1"), "cannot read text"),
])
def test_empty_binary_or_non_utf8_files_are_one_line_errors(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    with pytest.raises(PromptError, match=message):
        load_sources([str(bad)], 0)
    assert main(["synth", "--prompts", str(bad), "--out-dir", str(tmp_path / "out"), "--manifest",
                 str(tmp_path / "m.jsonl"), "--count", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "bad.txt" in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_source_specs_and_weights():
    assert parse_source_spec("a/b.txt") == ("a/b.txt", 1.0)
    assert parse_source_spec("a/b.txt:0.3") == ("a/b.txt", 0.3)
    assert parse_source_spec("c:/odd:name.txt") == ("c:/odd:name.txt", 1.0)
    with pytest.raises(PromptError, match="positive"):
        parse_source_spec("a.txt:0")
    with pytest.raises(PromptError, match="no prompt source"):
        load_sources([], 0)


def test_pick_prompt_follows_the_weights_and_the_split():
    sentences = tuple(f"sentence number {i}" for i in range(5000))
    sources = [split_source(PromptSource("a", 3.0, sentences), "train"), PromptSource(GRAMMAR, 1.0)]
    rng = np.random.default_rng(0)
    picks = [pick_prompt(sources, rng) for _ in range(4000)]
    share = Counter(name for name, _ in picks)["a"] / len(picks)
    assert share == pytest.approx(0.75, abs=0.03)
    assert not any(is_dev_sentence(text) for _, text in picks)
    dev = [split_source(PromptSource("a", 3.0, sentences), "dev"), PromptSource(GRAMMAR, 1.0)]
    dev_picks = [pick_prompt(dev, rng, "dev") for _ in range(300)]
    assert all(is_dev_sentence(text) for _, text in dev_picks)
    assert 0.01 < sum(map(is_dev_sentence, sentences)) / len(sentences) < 0.03  # about 1 in 50


def test_grammar_sentences_are_normalized_words():
    rng = np.random.default_rng(0)
    sentences = [grammar_sentence(rng) for _ in range(300)]
    assert all(s == normalize_text(s) and s for s in sentences)
    assert len(set(sentences)) > 250
