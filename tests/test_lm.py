"""LM tooling: `asr lm build` / `download`, and `asr tune` choosing weights on a dev set."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import pytest
import torch
from flashlight.lib.text.decoder.kenlm import KenLM
from flashlight.lib.text.dictionary import create_word_dict
from test_decode import spelled

from asr import lm as lm_module
from asr.checkpoint import load_model, make_checkpoint, save_atomic
from asr.cli import main
from asr.data.manifest import Utterance, write_manifest
from asr.decode import DecodingOptions
from asr.features import FeatureConfig
from asr.lm import CorpusError, build_lm, download_librispeech, spell
from asr.model import CTCModel, ModelConfig
from asr.text import CharTokenizer
from asr.tune import candidates, save_decoding, tune

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
    result = download_librispeech(tmp_path / "ls")
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


def test_tuned_decoding_is_stored_and_used_by_evaluate(tmp_path, speech_manifest, capsys):
    torch.manual_seed(0)
    tokenizer = CharTokenizer()
    model = CTCModel(ModelConfig(hidden_size=16, num_layers=1, subsample=3, vocab_size=len(tokenizer))).eval()
    checkpoint = tmp_path / "model.pt"
    save_atomic(make_checkpoint(model, FeatureConfig(), tokenizer), checkpoint)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    assert main(["lm", "build", "--text", str(corpus), "--order", "2", "--out", str(tmp_path / "lm")]) == 0
    lm_dir = tmp_path / "lm"
    assert main(["tune", "--model", str(checkpoint), "--manifest", str(speech_manifest), "--lm", str(lm_dir / "lm.arpa"),
                 "--lexicon", str(lm_dir / "lexicon.txt"), "--lm-weights", "0.5,1", "--word-scores", "0",
                 "--beam_size", "4", "--out", str(tmp_path / "tuned.pt")]) == 0
    assert "dev-tuned WER" in capsys.readouterr().out
    stored = load_model(tmp_path / "tuned.pt").decoding
    assert stored["decoder"] == "beam" and stored["beam_size"] == 4 and stored["lm_weight"] in (0.5, 1.0)
    assert stored["lm"] == str((lm_dir / "lm.arpa").resolve())
    assert load_model(checkpoint).decoding == {}  # --out leaves the original alone

    from asr.cli import build_parser, decoding_options

    loaded = load_model(tmp_path / "tuned.pt")
    args = build_parser().parse_args(["evaluate", "--model", "m", "--manifest", "x"])
    assert decoding_options(args, loaded) == DecodingOptions(**stored)
    args = build_parser().parse_args(["evaluate", "--model", "m", "--manifest", "x", "--decoder", "greedy"])
    assert decoding_options(args, loaded).decoder == "greedy"
    assert main(["evaluate", "--model", str(tmp_path / "tuned.pt"), "--manifest", str(speech_manifest),
                 "--out-dir", str(tmp_path / "decode")]) == 0
    save_decoding(checkpoint, DecodingOptions(decoder="beam", lm=str(tmp_path / "gone.arpa")))
    assert main(["evaluate", "--model", str(checkpoint), "--manifest", str(speech_manifest)]) == 1
    assert capsys.readouterr().err.strip().endswith("gone.arpa: language model not found")
