"""asr.textcorpus: files and folders -> normalized, filtered, deduplicated sentences."""

from __future__ import annotations

import gzip
import json

import pytest

from asr.textcorpus import (
    SeenSentences,
    TextCorpusError,
    is_heading,
    iter_sentences,
    sample_sentences,
    split_sentences,
)

BOOK = """CHAPTER I. THE DOCTOR

Mr. Smith met Dr. Watson at St. Paul's in 1884. They talked for 3 hours!
[Illustration: The two friends]
"Is it far?" asked Mrs. Hudson[5]. It was not.
IV.
It was not.
The end of the first chapter came quickly.
"""


def write_gz(path, text):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "more").mkdir(parents=True)
    write_gz(folder / "book.txt.gz", BOOK)
    (folder / "more" / "sentences.txt").write_text("A short modern sentence.\nKate loves China.\n", encoding="utf-8")
    (folder / "README.md").write_text("not corpus text\n", encoding="utf-8")  # ignored: not .txt/.txt.gz/.jsonl
    return folder


def test_folder_of_text_and_gzip_files_gives_normalized_sentences(corpus):
    assert list(iter_sentences([corpus])) == [
        "mister smith met doctor watson at saint paul's in eighteen eighty four",
        "they talked for three hours",
        "is it far asked missus hudson",  # the bracketed illustration and footnote mark are gone
        "it was not",  # once: the repeat two paragraphs later is dropped
        "the end of the first chapter came quickly",
        "a short modern sentence",
        "kate loves china",
    ]  # the headings "CHAPTER I. THE DOCTOR" and "IV." are dropped


def test_word_count_filter_exclusion_and_no_deduplication(corpus, tmp_path):
    manifest = tmp_path / "dev.jsonl"
    manifest.write_text(json.dumps({"id": "u1", "audio_path": "u1.wav", "duration": 1.0,
                                    "text": "KATE LOVES CHINA", "speaker": "s"}) + "\n", encoding="utf-8")
    dev = set(iter_sentences([manifest]))
    assert dev == {"kate loves china"}
    sentences = list(iter_sentences([corpus], min_words=3, max_words=7, exclude=dev))
    assert sentences == ["they talked for three hours", "is it far asked missus hudson", "it was not",
                         "a short modern sentence"]
    assert list(iter_sentences([corpus], min_words=3, max_words=3, deduplicate=False)) == ["it was not"] * 2 + [
        "kate loves china"]
    assert "a short modern sentence" not in iter_sentences([corpus], exclude=["A SHORT modern sentence!"])


def test_manifest_transcripts_are_sentences_without_heading_rules(tmp_path):
    manifest = tmp_path / "train.jsonl"
    rows = [{"id": f"u{i}", "audio_path": "a.wav", "duration": 1.0, "text": text, "speaker": "s"}
            for i, text in enumerate(["CHAPTER ONE", "MR SMITH SAID NO. THEN HE LEFT"])]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert list(iter_sentences([manifest])) == ["chapter one", "mr smith said no then he left"]


def test_sample_is_seeded_uniform_subset_in_corpus_order(tmp_path):
    path = tmp_path / "numbers.txt"
    path.write_text("".join(f"sentence number {i}.\n" for i in range(1, 501)), encoding="utf-8")
    everything = list(iter_sentences([path]))
    sample = sample_sentences([path], 50, seed=1)
    assert len(sample) == 50 == len(set(sample)) and set(sample) <= set(everything)
    assert sample == sorted(sample, key=everything.index)
    assert sample == sample_sentences([path], 50, seed=1) != sample_sentences([path], 50, seed=2)
    assert everything.index(sample[-1]) > 250  # drawn from the whole file, not its head
    assert sample_sentences([path], 1000) == everything


def test_sentence_splitting_keeps_abbreviations():
    assert split_sentences('Mr. Smith went to St. Paul\'s. He said: "Hello!" Then Dr. Who left.') == [
        "Mr. Smith went to St. Paul's. ", 'He said: "Hello!" ', "Then Dr. Who left."]
    assert split_sentences("Gen. Grant and Lieut. Dan came at 5 p.m. on Baker St. in London. It rained.") == [
        "Gen. Grant and Lieut. Dan came at 5 p.m. on Baker St. in London. ", "It rained."]


@pytest.mark.parametrize("text", ["CHAPTER XXVII", "CHAPTER IX THE MISSING FINGER", "Chapter 4.", "chapter iv",
                                  "BOOK THE FIRST", "Act I, Scene 2", "XXXV. Conquests in Persia.", "V", "CXVI",
                                  "1. VII. HER EARLIER INCARNATIONS", "PREFACE", "FOOTNOTES:", "THE END.", "12."])
def test_headings(text):
    assert is_heading(text)


@pytest.mark.parametrize("text", ["I WENT HOME", "I went home.", "Part of the house was empty.",
                                  "Book in hand, he left.", "Act like a man.", "THE SONG OF THE DEAD", "CIVIL WAR",
                                  "MARK IS GOING TO SEE ELEPHANT", "Chapter IV was the longest chapter of the "
                                  "whole book and everybody who read it said so."])
def test_not_headings(text):
    assert not is_heading(text)


def test_seen_sentences_never_misses_a_repeat_and_has_fixed_memory():
    seen = SeenSentences(size_bytes=1 << 16)  # 512 kbit for 5,000 sentences: about 1 false repeat in 10^5
    sentences = [f"sentence {i}" for i in range(5000)]
    new = [seen.add(s) for s in sentences]
    assert sum(new) >= 4995  # new sentences are (almost) all taken as new
    assert not any(seen.add(s) for s in sentences)  # every repeat is caught
    assert len(seen.bits) == 1 << 16


def test_unreadable_sources_are_clear_errors(tmp_path):
    with pytest.raises(TextCorpusError, match="not found"):
        list(iter_sentences([tmp_path / "missing"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TextCorpusError, match="no .txt"):
        list(iter_sentences([tmp_path / "empty"]))
    broken = tmp_path / "broken.txt.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(TextCorpusError, match="broken.txt.gz: cannot read"):
        list(iter_sentences([broken]))
