"""LM tooling: `asr lm build` / `download`, and `asr tune` choosing weights on a dev set."""

from __future__ import annotations

import gzip
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from flashlight.lib.text.decoder.kenlm import KenLM
from flashlight.lib.text.dictionary import create_word_dict
from test_decode import spelled

from asr import lm as lm_module
from asr.checkpoint import load_model
from asr.cli import main
from asr.data.manifest import ManifestError, Utterance, read_manifest, write_manifest
from asr.decode import DecodingOptions
from asr.lm import CorpusError, build_lm, download_librispeech_lm, spell
from asr.text import CharTokenizer
from asr.tune import candidates, compute_emissions, save_decoding, tune

CORPUS = "The CAT sat on the mat.\nthe cat sat!\n\nA cat sat on a mat\nthe bat\n"


class ArpaModel:
    """An ARPA file loaded by KenLM (as bundled in flashlight-text, which beam search uses)."""

    def __init__(self, path: str | Path):
        words = {line.split("\t")[1] for line in open(path) if line.count("\t") >= 1}
        self.dictionary = create_word_dict({w: [[w]] for w in {*(" ".join(words)).split(), "<unk>"}})
        self.lm = KenLM(str(path), self.dictionary)

    def log10_prob(self, context: list[str], word: str) -> float:
        """log10 P(word | <s> context)."""
        state = self.lm.start(False)
        for w in context:
            state, _ = self.lm.score(state, self.dictionary.get_index(w))
        return self.lm.score(state, self.dictionary.get_index(word))[1]


def test_word_lm_and_lexicon_from_normalized_text(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    result = build_lm(corpus, 3, tmp_path / "lm")
    assert result["sentences"] == 4 and result["words"] == 17 and result["vocabulary"] == 7
    assert "ngram 3=" in Path(result["arpa"]).read_text()
    model = ArpaModel(result["arpa"])
    assert model.log10_prob(["the"], "cat") > model.log10_prob(["the"], "bat")
    assert math.isclose(sum(10 ** model.log10_prob(["the", "cat"], w)  # seen twice, always followed by "sat"
                            for w in ["sat", "on", "mat", "bat", "a", "the", "cat", "</s>"]), 1.0, abs_tol=0.02)
    lines = Path(result["lexicon"]).read_text().splitlines()
    assert "cat\tc a t |" in lines and len(lines) == 7
    assert all(line == line.lower() and "," not in line for line in lines)


def test_character_lm_spells_words_with_separators(tmp_path):
    assert spell("the cat") == "t h e | c a t"
    corpus = tmp_path / "corpus.jsonl"  # a manifest's transcripts work as a corpus too
    write_manifest([Utterance(f"u{i}", "x.wav", 1.0, text, "s") for i, text in enumerate(CORPUS.splitlines()) if text],
                   corpus)
    result = build_lm(corpus, 4, tmp_path / "char", unit="char")
    model = ArpaModel(result["arpa"])
    assert result["lexicon"] is None and not (tmp_path / "char" / "lexicon.txt").exists()
    assert model.log10_prob(list("the"), "|") > model.log10_prob(list("the"), "e")
    unigrams = Path(result["arpa"]).read_text().split("\\2-grams:")[0]
    assert "\t|\t" in unigrams and "\tcat" not in unigrams


def test_bad_corpus_and_order_are_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("...\n!!\n")
    with pytest.raises(CorpusError, match="empty.txt: no text left"):
        build_lm(empty, 3, tmp_path / "out")
    assert main(["lm", "build", "--text", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "out")]) == 1
    assert main(["lm", "build", "--text", str(empty), "--order", "7", "--out", str(tmp_path / "out")]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and all(e.startswith("error: ") for e in errors)
    assert "missing.txt" in errors[0] and "order" in errors[1]


def test_librispeech_download_is_lowercased_for_our_tokenizer(tmp_path, monkeypatch):
    arpa = ("\\data\\\nngram 1=4\nngram 2=1\n\n\\1-grams:\n-1.0\t<s>\t-0.3\n-0.5\tHELLO\t-0.2\n-0.6\tWORLD'S\n"
            "-0.4\t</s>\n\n\\2-grams:\n-0.1\tHELLO WORLD'S\n\n\\end\\\n")
    served = {"3-gram.pruned.1e-7.arpa.gz": gzip.compress(arpa.encode()), "librispeech-vocab.txt": b"HELLO\nWORLD'S\n"}
    fetched = []

    def fake_download(url, path, md5=None):
        fetched.append(url)
        Path(path).write_bytes(served[url.rsplit("/", 1)[1]])
        return Path(path)

    monkeypatch.setattr("asr.corpora.download.download_file", fake_download)
    result = download_librispeech_lm(tmp_path / "ls")
    assert all(url.startswith(lm_module.OPENSLR_11) for url in fetched)
    model = ArpaModel(result["lm"])
    assert model.log10_prob([], "hello") == pytest.approx(-0.3 - 0.5)  # backs off from <s>
    assert model.log10_prob(["hello"], "world's") == pytest.approx(-0.1)
    assert Path(result["lexicon"]).read_text().splitlines() == ["hello\th e l l o |", "world's\tw o r l d ' s |"]


def test_tune_picks_the_weight_with_the_lowest_dev_wer(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    built = build_lm(corpus, 3, tmp_path / "lm")
    # Audio that leans to "bat"; the reference says "cat", as the LM does.
    utterances = [Utterance("u1", "x.wav", 1.0, "the cat sat", "s"), Utterance("u2", "y.wav", 1.0, "the mat", "s")]
    emissions = {"u1": spelled("the bat sat", ambiguous={4: {"b": 0.55, "c": 0.4, "<blank>": 0.05}})[0],
                 "u2": spelled("the mat")[0]}
    base = DecodingOptions(decoder="beam", beam_size=8, lm=built["lm"], lexicon=built["lexicon"])
    pairs = candidates((0.0, 1.0), (0.0,))
    best, rows = tune(emissions, utterances, CharTokenizer(), base, pairs, log=lambda line: None)
    assert [(r["lm_weight"], r["wer"]) for r in rows] == [(0.0, 0.2), (1.0, 0.0)]
    assert (best.lm_weight, best.word_score, best.beam_size) == (1.0, 0.0, 8)
    random_pairs = candidates((0.0, 2.0), (-1.0, 1.0), trials=5, seed=3)
    assert len(random_pairs) == 5 and all(0 <= w <= 2 and -1 <= s <= 1 for w, s in random_pairs)
    assert random_pairs == candidates((0.0, 2.0), (-1.0, 1.0), trials=5, seed=3)


def test_compute_emissions_pairs_each_utterance_with_its_own_log_probs(tiny_checkpoint, speech_manifest):
    loaded = load_model(tiny_checkpoint)
    utterances = read_manifest(speech_manifest)  # batched longest first, so not in manifest order
    emissions = compute_emissions(loaded, utterances)
    assert list(emissions) == [u.id for u in utterances]
    for utt in utterances:
        [alone] = compute_emissions(loaded, [utt]).values()
        assert emissions[utt.id].shape == alone.shape and torch.allclose(emissions[utt.id], alone, atol=1e-5)
    with pytest.raises(ManifestError, match="utterance id 'utt0' appears more than once"):
        compute_emissions(loaded, [*utterances, utterances[0]])


def test_tuned_decoding_is_stored_and_used_by_evaluate(tiny_checkpoint, tmp_path, speech_manifest, capsys):
    checkpoint = Path(shutil.copy(tiny_checkpoint, tmp_path / "model.pt"))  # tuned in place below
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    assert main(["lm", "build", "--text", str(corpus), "--order", "2", "--out", str(tmp_path / "lm")]) == 0
    lm_dir = tmp_path / "lm"
    assert main(["tune", "--model", str(checkpoint), "--manifest", str(speech_manifest),
                 "--lm", str(lm_dir / "lm.arpa"), "--lexicon", str(lm_dir / "lexicon.txt"),
                 "--lm-weights", "0.5,1", "--word-scores", "0",
                 "--beam-size", "4", "--out", str(tmp_path / "tuned.pt")]) == 0
    assert "dev-tuned WER" in capsys.readouterr().out
    loaded = load_model(tmp_path / "tuned.pt")
    stored = loaded.decoding
    assert stored.decoder == "beam" and stored.beam_size == 4 and stored.lm_weight in (0.5, 1.0)
    assert stored.lm == str((lm_dir / "lm.arpa").resolve())
    assert load_model(checkpoint).decoding == DecodingOptions()  # --out leaves the original alone

    from asr.cli import build_parser
    from asr.commands import decoding_options

    args = build_parser().parse_args(["evaluate", "--model", "m", "--manifest", "x"])
    assert decoding_options(args, loaded) == stored
    args = build_parser().parse_args(["evaluate", "--model", "m", "--manifest", "x", "--decoder", "greedy"])
    assert decoding_options(args, loaded).decoder == "greedy"
    assert main(["evaluate", "--model", str(tmp_path / "tuned.pt"), "--manifest", str(speech_manifest),
                 "--out-dir", str(tmp_path / "decode")]) == 0
    save_decoding(checkpoint, DecodingOptions(decoder="beam", lm=str(tmp_path / "gone.arpa")))
    assert main(["evaluate", "--model", str(checkpoint), "--manifest", str(speech_manifest)]) == 1
    assert capsys.readouterr().err.strip().endswith("gone.arpa: language model not found")


def _write_gz(path: Path, lines: list[str]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(f"{line}\n" for line in lines))


def test_build_from_a_folder_of_gzip_books_with_vocabulary_in_domain_text_and_exclusion(tmp_path, capsys):
    books = tmp_path / "books"
    books.mkdir()
    _write_gz(books / "1.txt.gz", ["CHAPTER I.", "The cat sat on the mat. The cat sat on the hat.",
                                   "Kate loves China. The dog ate 3 bones."])
    _write_gz(books / "2.txt.gz", ["The cat sat on the mat.", "A zebra yawned."])
    train = tmp_path / "train.jsonl"
    write_manifest([Utterance("t1", "x.wav", 1.0, "MARK IS GOING TO SEE ELEPHANT", "s")], train)
    dev = tmp_path / "dev.jsonl"
    write_manifest([Utterance("d1", "x.wav", 1.0, "KATE LOVES CHINA", "s")], dev)
    assert main(["lm", "build", "--text", str(books), "--in-domain", str(train), "--exclude", str(dev),
                 "--order", "3", "--vocab-size", "8", "--out", str(tmp_path / "lm")]) == 0
    assert "word 3-gram" in capsys.readouterr().out
    info = json.loads((tmp_path / "lm" / "build.json").read_text())
    # 4 corpus sentences (the repeated one once, the heading and the dev sentence dropped) + 1 in-domain
    assert info["sentences"] == 5 and info["excluded_sentences"] == 1
    words = [line.split("\t")[0] for line in (tmp_path / "lm" / "lexicon.txt").read_text().splitlines()]
    assert {"the", "cat", "sat", "on", "dog", "elephant", "going"} <= set(words)  # top 8 + every in-domain word
    assert "zebra" not in words and "kate" not in words and len(words) == 8 + 6
    arpa = (tmp_path / "lm" / "lm.arpa").read_text()
    assert "\tkate" not in arpa and "loves" not in arpa  # the dev sentence never reached the LM
    model = ArpaModel(tmp_path / "lm" / "lm.arpa")
    assert model.log10_prob(["mark", "is"], "going") > model.log10_prob(["mark", "is"], "cat")
    binary = KenLM(str(tmp_path / "lm" / "lm.bin"), model.dictionary)  # the binary loads and agrees
    state, score = binary.score(binary.start(False), model.dictionary.get_index("the"))
    assert score == pytest.approx(model.log10_prob([], "the"), abs=1e-4)


def test_dev_sentences_in_the_training_text_are_caught(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("the cat sat\nkate loves china\n")
    lm_module.check_excluded(text, ["the dog"])
    with pytest.raises(CorpusError, match="text.txt:2: an excluded"):
        lm_module.check_excluded(text, ["KATE LOVES CHINA!"])


@pytest.mark.slow
def test_memory_stays_bounded_when_the_corpus_grows(tmp_path):
    """Peak memory of our streaming pass and of lmplz (-S 64M) for a corpus and one 4x larger."""
    # VmHWM, not ru_maxrss: the latter keeps the memory of the forked pytest process across exec
    script = ("import json, re, sys\nfrom asr.lm import build_lm\n"
              "info = build_lm(sys.argv[1], 3, sys.argv[2], vocab_size=2000, memory='64M')\n"
              "peak = re.search(r'VmHWM:\\s*(\\d+) kB', open('/proc/self/status').read()).group(1)\n"
              "print(json.dumps([int(peak), info['lmplz_peak_kb']]))\n")
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 6)) for _ in range(5000)]
    peaks = []
    for n_sentences in (20_000, 80_000):
        corpus = tmp_path / f"corpus{n_sentences}.txt"
        corpus.write_text("".join(" ".join(words[i] for i in row) + "\n"
                                  for row in rng.integers(0, len(words), (n_sentences, 8))))
        done = subprocess.run([sys.executable, "-c", script, str(corpus), str(tmp_path / f"lm{n_sentences}")],
                              capture_output=True, text=True, check=True)
        peaks.append(json.loads(done.stdout))  # [python KB, lmplz KB]
    (python_small, lmplz_small), (python_large, lmplz_large) = peaks
    assert python_large < python_small + 30_000  # kB: the text streams; only word counts and the dedupe filter
    assert python_large < 400_000 and lmplz_large < 200_000  # kB: lmplz sorts on disk within its 64M


def test_missing_kenlm_tools_fail_before_reading_the_corpus(tmp_path, monkeypatch):
    monkeypatch.setattr(lm_module.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CorpusError, match="lmplz not found.*make install"):
        build_lm(tmp_path / "no-such-corpus.txt", 3, tmp_path / "lm")  # the corpus error would come later
