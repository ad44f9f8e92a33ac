"""Greedy and beam decoding on hand-built and random CTC emissions.

Hand-built emissions spell a text: each character is certain-ish on one frame
and followed by blank frames, with chosen characters made ambiguous. Random
emissions are blank-dominated and peaked, like a trained model's.
"""

from __future__ import annotations

import pytest
import torch

from asr.config import ConfigError
from asr.decode import (
    DecoderError,
    DecodingOptions,
    add_word_timings,
    make_decoder,
    override_decoding,
)
from asr.lm import build_lm
from asr.text import CharTokenizer

TOKENIZER = CharTokenizer()
FRAME_SECONDS = 0.04


def spelled(text: str, ambiguous: dict[int, dict[str, float]] | None = None, hold: int = 3) -> torch.Tensor:
    """(1, frames, vocab) log-probs spelling `text`, one character per `hold` frames.
    ambiguous: {character index: {symbol: probability}} overrides that character's frame."""
    rows = []
    for i, char in enumerate(text):
        for k in range(hold):
            row = torch.full((len(TOKENIZER),), 0.02 / (len(TOKENIZER) - 1))
            choices = (ambiguous or {}).get(i, {char: 0.98}) if k == 0 else {"<blank>": 0.98}
            for symbol, p in choices.items():
                row[TOKENIZER.vocab.index(symbol)] = p
            rows.append(row / row.sum())
    return torch.stack(rows).log().unsqueeze(0)


def random_emissions(seed: int, frames: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, frames, len(TOKENIZER), generator=gen) * (2.0 + seed % 4)
    logits[..., TOKENIZER.blank_id] += 3.0
    return logits.log_softmax(-1)  # (1, frames, vocab)


def decode(options: DecodingOptions, log_probs: torch.Tensor):
    return make_decoder(options, TOKENIZER).decode(log_probs, torch.tensor([log_probs.shape[1]]))[0]


def likelihood(log_probs: torch.Tensor, hyp) -> float:
    """log P(hyp's text | audio) under CTC, what training maximizes. log_probs: (1, frames, vocab).

    CTC sums the probability of every frame alignment of a label sequence. A text
    does not show a word separator at its start or end, and the beam decoder treats
    one there as silence, so the label sequences with and without one at either end
    are summed too. Decoders are compared on this without an LM.
    """
    space = TOKENIZER.space_id
    core = list(hyp.tokens)
    while core and core[0] == space:
        core.pop(0)
    while core and core[-1] == space:
        core.pop()
    variants = sorted({tuple(core), (space, *core), (*core, space), (space, *core, space)})
    frames = log_probs.shape[1]
    losses = torch.nn.functional.ctc_loss(
        log_probs[0].unsqueeze(1).expand(frames, len(variants), -1),  # (frames, variants, vocab)
        torch.tensor([t for v in variants for t in v], dtype=torch.long),
        torch.full((len(variants),), frames), torch.tensor([len(v) for v in variants]),
        blank=TOKENIZER.blank_id, reduction="none")  # (variants,)
    return float(torch.logsumexp(-losses, dim=0))


@pytest.fixture(scope="module")
def lexicon(tmp_path_factory):
    path = tmp_path_factory.mktemp("lex") / "lexicon.txt"
    path.write_text("".join(f"{w}\t{' '.join(w)} |\n" for w in ["the", "cat", "bat", "sat", "on", "mat"]))
    return str(path)


def test_beam_of_one_without_lm_is_greedy():
    greedy, beam = DecodingOptions(), DecodingOptions(decoder="beam", beam_size=1)
    for seed in range(40):
        log_probs = random_emissions(seed, frames=10 + seed)
        g, b = decode(greedy, log_probs), decode(beam, log_probs)
        assert (b.text, b.tokens, b.frames) == (g.text, g.tokens, g.frames)
        assert b.score == pytest.approx(g.score, abs=1e-3)


def test_padded_batch_decodes_like_single_utterances(lexicon):
    long, short = spelled("the cat sat on the mat"), spelled("the bat")
    batch = torch.cat([long, torch.nn.functional.pad(short, (0, 0, 0, long.shape[1] - short.shape[1]))])
    for options in (DecodingOptions(decoder="beam", beam_size=8), DecodingOptions("beam", 8, lexicon=lexicon)):
        hyps = make_decoder(options, TOKENIZER).decode(batch, torch.tensor([long.shape[1], short.shape[1]]))
        assert [h.text for h in hyps] == ["the cat sat on the mat", "the bat"]
        assert hyps[1].frames == decode(options, short).frames


def test_wider_beam_is_never_less_likely_than_greedy():
    greedy = DecodingOptions()
    for beam_size in (4, 16):
        beam = DecodingOptions(decoder="beam", beam_size=beam_size)
        for seed in range(60):
            log_probs = random_emissions(seed, frames=20 + seed)
            greedy_likelihood = likelihood(log_probs, decode(greedy, log_probs))
            assert likelihood(log_probs, decode(beam, log_probs)) >= greedy_likelihood - 1e-4


def test_beam_finds_the_likelier_text_that_greedy_misses():
    # Two frames, P(blank) = 0.6 and P(a) = 0.4 on each: greedy's best path reads "",
    # P("") = 0.36; but "a" has three paths (aa, a-, -a) with P = 0.64 together.
    log_probs = torch.full((1, 2, len(TOKENIZER)), -30.0)
    log_probs[..., TOKENIZER.blank_id] = torch.tensor(0.6).log()
    log_probs[..., TOKENIZER.vocab.index("a")] = torch.tensor(0.4).log()
    g, b = decode(DecodingOptions(), log_probs), decode(DecodingOptions(decoder="beam", beam_size=4), log_probs)
    assert (g.text, b.text) == ("", "a")
    assert likelihood(log_probs, b) == pytest.approx(torch.tensor(0.64).log().item(), abs=1e-4)
    assert likelihood(log_probs, b) > likelihood(log_probs, g)


def test_lexicon_output_contains_only_lexicon_words(lexicon):
    words = {line.split("\t")[0] for line in open(lexicon)}
    log_probs = spelled("the cap sat on a mat", ambiguous={6: {"p": 0.6, "t": 0.3, "<blank>": 0.1}})
    free = decode(DecodingOptions(decoder="beam", beam_size=16), log_probs)
    constrained = decode(DecodingOptions(decoder="beam", beam_size=16, lexicon=lexicon), log_probs)
    assert free.text == "the cap sat on a mat"
    assert constrained.text.split() and set(constrained.text.split()) <= words
    assert "cat" in constrained.text.split()


@pytest.fixture(scope="module")
def cat_corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("the cat sat on the mat\nthe cat sat\na cat sat on a mat\nthe bat\n")
    return path


def test_word_lm_shifts_output_to_the_sentence_it_knows(lexicon, cat_corpus, tmp_path):
    lm = build_lm(cat_corpus, 3, tmp_path / "word")
    # The audio leans to "bat" (0.55 vs 0.4): without an LM "bat" wins; the LM has seen "the cat sat".
    log_probs = spelled("the bat sat", ambiguous={4: {"b": 0.55, "c": 0.4, "<blank>": 0.05}})
    plain = decode(DecodingOptions(decoder="beam", beam_size=16, lexicon=lexicon), log_probs)
    with_lm = decode(DecodingOptions(decoder="beam", beam_size=16, lexicon=lm["lexicon"], lm=lm["lm"],
                                     lm_weight=1.0), log_probs)
    assert plain.text == "the bat sat"
    assert with_lm.text == "the cat sat"


def test_character_lm_shifts_lexicon_free_output(cat_corpus, tmp_path):
    lm = build_lm(cat_corpus, 5, tmp_path / "char", unit="char")
    assert lm["lexicon"] is None
    log_probs = spelled("the mab", ambiguous={6: {"b": 0.55, "t": 0.4, "<blank>": 0.05}})
    plain = decode(DecodingOptions(decoder="beam", beam_size=16), log_probs)
    with_lm = decode(DecodingOptions(decoder="beam", beam_size=16, lm=lm["lm"], lm_weight=1.0), log_probs)
    assert (plain.text, with_lm.text) == ("the mab", "the mat")


@pytest.mark.parametrize("use_lexicon", [False, True])
def test_word_times_are_monotonic_inside_the_audio_and_confident(lexicon, use_lexicon):
    log_probs = spelled("the cat sat on the mat", ambiguous={4: {"c": 0.5, "b": 0.3, "<blank>": 0.2}})
    options = DecodingOptions(decoder="beam", beam_size=8, lexicon=lexicon if use_lexicon else None)
    hyp = add_word_timings(decode(options, log_probs), log_probs[0], FRAME_SECONDS, TOKENIZER.space_id)
    duration = log_probs.shape[1] * FRAME_SECONDS
    assert [w.text for w in hyp.words] == hyp.text.split() == "the cat sat on the mat".split()
    for word, following in zip(hyp.words, hyp.words[1:]):
        assert word.end <= following.start
    assert all(0 <= w.start < w.end <= duration for w in hyp.words)
    # Each character sits 3 frames apart: "cat" starts on frame 12 (0.48 s).
    assert hyp.words[1].start == pytest.approx(12 * FRAME_SECONDS)
    # Confidence: the mean posterior of each letter on the frame that emitted it (frames 12, 15, 18).
    posterior = [log_probs[0, frame, TOKENIZER.vocab.index(c)].exp().item() for frame, c in zip((12, 15, 18), "cat")]
    assert posterior[0] == pytest.approx(0.49, abs=0.01) and posterior[1] == pytest.approx(0.98, abs=1e-3)
    confidences = {w.text: w.confidence for w in hyp.words}
    assert confidences["cat"] == pytest.approx(sum(posterior) / 3, abs=1e-4)
    assert confidences["mat"] == pytest.approx(0.98, abs=1e-3)


def test_missing_or_broken_lm_files_are_named(tmp_path, capfd):
    with pytest.raises(DecoderError, match="nowhere.arpa: language model not found"):
        make_decoder(DecodingOptions(decoder="beam", lm=str(tmp_path / "nowhere.arpa")), TOKENIZER)
    broken = tmp_path / "broken.arpa"
    broken.write_text("this is not an ARPA file\n")
    with pytest.raises(DecoderError, match="broken.arpa") as raised:
        make_decoder(DecodingOptions(decoder="beam", lm=str(broken)), TOKENIZER)
    message = str(raised.value)  # KenLM's reason, without its C++ source location or a second line
    assert "first non-empty line was" in message and ".cc" not in message and "\n" not in message
    assert capfd.readouterr().err == ""  # nor its banner or progress bar


def test_loading_an_arpa_prints_no_kenlm_banner(cat_corpus, tmp_path, capfd):
    built = build_lm(cat_corpus, 3, tmp_path / "word")
    for lm in (built["arpa"], built["lm"]):
        make_decoder(DecodingOptions(decoder="beam", lm=lm, lexicon=built["lexicon"]), TOKENIZER)
    assert capfd.readouterr().err == ""


def test_word_lm_without_lexicon_is_refused(cat_corpus, tmp_path):
    word_lm = build_lm(cat_corpus, 3, tmp_path / "word")["arpa"]  # the check reads ARPA unigrams
    with pytest.raises(DecoderError, match="word LM needs a lexicon"):
        make_decoder(DecodingOptions(decoder="beam", lm=word_lm), TOKENIZER)
    char_lm = build_lm(cat_corpus, 3, tmp_path / "char", unit="char")["lm"]
    make_decoder(DecodingOptions(decoder="beam", lm=char_lm), TOKENIZER)


def test_overrides_apply_on_top_and_an_lm_alone_means_beam():
    stored = DecodingOptions(decoder="greedy", beam_size=8, lm_weight=1.5)
    assert override_decoding(stored, {}) == stored
    assert override_decoding(stored, {"lm": "lm.bin"}) == DecodingOptions("beam", 8, lm_weight=1.5, lm="lm.bin")
    assert override_decoding(stored, {"lexicon": "lex.txt"}).decoder == "beam"
    assert override_decoding(stored, {"lm": "lm.bin", "decoder": "greedy"}).decoder == "greedy"
    assert override_decoding(stored, {"beam_size": "20"}) == DecodingOptions("greedy", 20, lm_weight=1.5)
    assert override_decoding(DecodingOptions("beam", lm="lm.bin"), {"lm": "none"}).lm is None
    with pytest.raises(ConfigError, match="beam_size must be between"):
        override_decoding(stored, {"beam_size": "0"})
