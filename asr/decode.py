"""CTC decoding behind one interface: greedy, and beam search with an optional n-gram LM.

    decoder = make_decoder(DecodingOptions(...), tokenizer)
    hyps = decoder.decode(log_probs, lengths)   # log_probs (batch, frames, vocab), lengths (batch,)

A loaded model carries its default options (`LoadedModel.decoding`, from the checkpoint);
`override_decoding` puts the command line's on top of them.

Each `Hypothesis` holds the text, the token ids and, for each token, the model
output frame where it was emitted (multiply by the frame period for seconds).
`add_word_timings` turns those frames and the frame posteriors into `Word`s with
start/end times and a confidence, for either decoder.

The beam decoder is flashlight-text's, called directly (as torchaudio's `ctc_decoder` would;
the lexicon trie is cached by asr.trie):
  * lexicon-free: any character sequence; an LM, if given, must be over the
    tokenizer's characters with `|` between words (`asr lm build --unit char`);
  * lexicon-constrained (`lexicon=PATH`): only the lexicon's words, whose
    spellings end with `|` (`asr lm build` writes one); a word-level KenLM
    (ARPA or binary) then scores word sequences.
It merges hypotheses that end in the same state (log-add), so without an LM it
looks for the text with the highest CTC likelihood; it is a pruned search, not an
exact one (docs/design.md says how far from exact, and why this decoder).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from asr.config import merge
from asr.configs import DecodingOptions
from asr.errors import AsrError
from asr.extras import require
from asr.text import BLANK, SPACE, WORD_SEPARATOR, CharTokenizer

FILE_OPTIONS = ("lm", "lexicon")  # the options that name files
UNK_WORD = "<unk>"  # the word dictionary's entry for words the LM does not know


class DecoderError(AsrError):
    """An LM or lexicon file that the beam decoder cannot use. The message names the file."""


def override_decoding(options: DecodingOptions, overrides: dict) -> DecodingOptions:
    """`options` with `overrides` ({field: value}; strings are parsed, as flags give them) on top.
    Naming an LM or a lexicon without a decoder means beam search."""
    if any(key in overrides for key in FILE_OPTIONS) and "decoder" not in overrides:
        overrides = {**overrides, "decoder": "beam"}
    return merge(options, overrides)


@dataclass
class Word:
    text: str
    start: float  # seconds
    end: float  # seconds
    confidence: float  # in [0, 1]; see add_word_timings


@dataclass
class Hypothesis:
    text: str
    tokens: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)  # output frame of each token
    score: float = 0.0  # log-probability of the decoded path (greedy) / decoder score incl. LM (beam)
    words: list[Word] = field(default_factory=list)  # filled by add_word_timings


class Decoder:
    """Interface: (batch, frames, vocab) log-probs + (batch,) lengths -> one Hypothesis each."""

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
        raise NotImplementedError


def _join_words(tokenizer: CharTokenizer, tokens: list[int]) -> str:
    return " ".join(tokenizer.decode(tokens).split())


class GreedyDecoder(Decoder):
    """Best class per frame, then collapse repeats and drop blanks."""

    def __init__(self, tokenizer: CharTokenizer):
        self.tokenizer = tokenizer

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
        best_scores, best = log_probs.detach().float().cpu().max(dim=-1)  # (batch, frames) each
        hyps = []
        for b, length in enumerate(lengths.tolist()):
            path = best[b, :length]  # (frames,)
            changed = torch.ones_like(path, dtype=torch.bool)
            changed[1:] = path[1:] != path[:-1]
            keep = changed & (path != self.tokenizer.blank_id)
            frames = keep.nonzero().squeeze(1).tolist()
            tokens = path[keep].tolist()
            hyps.append(Hypothesis(_join_words(self.tokenizer, tokens), tokens, frames,
                                   float(best_scores[b, :length].sum())))
        return hyps


class BeamSearchDecoder(Decoder):
    """flashlight-text CTC beam search, optionally lexicon-constrained and with a KenLM n-gram.

    It calls flashlight's Python API directly (what torchaudio's `ctc_decoder` wraps, without
    importing torchaudio), and reads the lexicon through asr.trie, which caches it."""

    def __init__(self, options: DecodingOptions, tokenizer: CharTokenizer, cache: bool = True):
        require("flashlight.lib.text.decoder", "flashlight-text", "beam search",
                hint="greedy decoding (--decoder greedy) does not")
        from flashlight.lib.text import decoder as fl
        from flashlight.lib.text.dictionary import Dictionary

        for path, what in ((options.lexicon, "lexicon"), (options.lm, "language model")):
            if path is not None and not Path(path).is_file():
                raise DecoderError(f"{path}: {what} not found")
        self.tokenizer = tokenizer
        self.uses_lexicon = options.lexicon is not None
        if options.lm and not self.uses_lexicon and _arpa_unigrams_lack(options.lm, WORD_SEPARATOR):
            raise DecoderError(f"{options.lm}: a word LM needs a lexicon (--lexicon); lexicon-free decoding "
                               f"needs a character LM (asr lm build --unit char)")
        tokens = [WORD_SEPARATOR if s == SPACE else s for s in tokenizer.vocab]
        self.blank_id = tokens.index(BLANK)
        silence = tokens.index(WORD_SEPARATOR)
        try:
            with _native_stderr_dropped():
                if self.uses_lexicon:
                    self.decoder, self.lm = _lexicon_decoder(fl, options, tokens, silence, self.blank_id, cache)
                else:
                    # The LM (a character LM) is asked about token ids: its word list is the tokens in id order.
                    self.lm = _kenlm(fl)(options.lm, Dictionary(tokens)) if options.lm else fl.ZeroLM()
                    self.decoder = fl.LexiconFreeDecoder(fl.LexiconFreeDecoderOptions(
                        beam_size=options.beam_size, beam_size_token=options.beam_size_token or len(tokens),
                        beam_threshold=options.beam_threshold, lm_weight=options.lm_weight,
                        # lexicon-free search has no word score; the separator's score plays that role
                        sil_score=options.word_score, log_add=True, criterion_type=fl.CriterionType.CTC),
                        self.lm, silence, self.blank_id, [])
        except Exception as err:  # flashlight/KenLM raise RuntimeError or IndexError with terse messages
            kenlm_failed = " threw " in str(err)  # KenLM's exceptions start "file.cc:NN in ... threw X."
            files = options.lm if kenlm_failed else " / ".join(p for p in (options.lexicon, options.lm) if p)
            raise DecoderError(f"{files}: cannot load for beam search ({type(err).__name__}: "
                               f"{_native_message(err)})") from None

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
        emissions = log_probs.detach().float().cpu()  # (batch, frames, vocab)
        lengths = lengths.cpu()
        if self.uses_lexicon:
            # Lexicon spellings end with the separator, which the model need not emit after
            # the last word: one extra frame that is certainly a separator closes that word
            # without changing any path's score (log 1 = 0).
            closing = torch.full_like(emissions[:, :1], -1e5)  # (batch, 1, vocab); -inf upsets log-add
            closing[..., self.tokenizer.space_id] = 0.0
            emissions = torch.cat([emissions, closing], dim=1)  # (batch, frames + 1, vocab)
            rows = torch.arange(len(lengths))
            emissions[rows, lengths] = closing[:, 0]
            lengths = lengths + 1
        emissions = emissions.contiguous()
        batch, _, vocab = emissions.shape
        hyps = []
        for b, length in enumerate(lengths.tolist()):
            pointer = emissions.data_ptr() + emissions.element_size() * b * emissions.stride(0)
            best = self.decoder.decode(pointer, length, vocab)[0]  # results sorted by score
            path = best.tokens  # a token per timestep
            # flashlight pads the path with a separator before frame 0 and after the last frame:
            # timestep t is frame t - 1; the closing frame (lexicon) is not a model frame either.
            last = length - 1 if self.uses_lexicon else length
            emitted = [(token, t - 1) for t, token in enumerate(path)
                       if token != self.blank_id and (t == 0 or token != path[t - 1]) and 1 <= t <= last]
            tokens = [token for token, _ in emitted]
            hyps.append(Hypothesis(_join_words(self.tokenizer, tokens), tokens,
                                   [frame for _, frame in emitted], float(best.score)))
        return hyps


def _kenlm(fl):
    """flashlight's KenLM class (in a submodule in newer flashlight-text releases)."""
    try:
        from flashlight.lib.text.decoder.kenlm import KenLM
    except ImportError:
        KenLM = fl.KenLM
    return KenLM


def _word_dict(words: list[str]):
    """A flashlight Dictionary of `words` in order, unknown words mapped to `<unk>` (added last if missing)."""
    from flashlight.lib.text.dictionary import Dictionary

    word_dict = Dictionary(words)
    if not word_dict.contains(UNK_WORD):
        word_dict.add_entry(UNK_WORD)
    word_dict.set_default_index(word_dict.get_index(UNK_WORD))
    return word_dict


def _lexicon_decoder(fl, options: DecodingOptions, tokens: list[str], silence: int, blank: int, cache: bool):
    """(LexiconDecoder, its LM) for a lexicon and, if given, a word LM; the trie as torchaudio builds it."""
    from asr.trie import LexiconFormatError, build_trie, read_lexicon

    loaded = {}  # the word dict and the LM, made from the lexicon's words

    def load_lm(words: list[str]):
        loaded["words"] = _word_dict(words)
        loaded["lm"] = _kenlm(fl)(options.lm, loaded["words"]) if options.lm else fl.ZeroLM()
        return loaded["lm"]

    def score_words(words: list[str]) -> list[float]:  # each word's unigram score, for smearing the trie
        lm = load_lm(words)
        start = lm.start(False)
        return [lm.score(start, loaded["words"].get_index(word))[1] for word in words]

    try:
        lexicon = read_lexicon(options.lexicon, tokens, options.lm, score_words, cache)
    except LexiconFormatError as err:
        raise DecoderError(f"{options.lexicon}: {err}") from None
    if not loaded:  # the lexicon came from the cache
        load_lm(lexicon.words)
    word_dict, lm = loaded["words"], loaded["lm"]
    trie = build_trie(lexicon, len(tokens), silence)
    decoder = fl.LexiconDecoder(fl.LexiconDecoderOptions(
        beam_size=options.beam_size, beam_size_token=options.beam_size_token or len(tokens),
        beam_threshold=options.beam_threshold, lm_weight=options.lm_weight, word_score=options.word_score,
        unk_score=options.unk_score, sil_score=0.0, log_add=True, criterion_type=fl.CriterionType.CTC),
        trie, lm, silence, blank, word_dict.get_index(UNK_WORD), [], False)
    return decoder, lm


@contextlib.contextmanager
def _native_stderr_dropped():
    """Send file descriptor 2 to a scratch file while KenLM loads: it writes banners there
    ("Loading the LM will be faster if you build a binary file", a progress bar, "****",
    "missing <unk>") that users read as errors. Real failures still raise, with their message."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as scratch:
            os.dup2(scratch.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _native_message(err: Exception) -> str:
    """A KenLM exception's message without its first line, "lm/read_arpa.cc:65 in void ... threw X."."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if len(lines) > 1 and " threw " in lines[0]:
        lines = lines[1:]
    return " ".join(lines)


def _arpa_unigrams_lack(path: str, word: str) -> bool:
    """True if `path` is an ARPA file whose 1-grams do not include `word` (False for binary files)."""
    with open(path, "rb") as f:
        if f.read(64).lstrip()[:6] != b"\\data\\":
            return False
        f.seek(0)
        in_unigrams, needle = False, word.encode()
        for line in f:
            if line.startswith(b"\\1-grams:"):
                in_unigrams = True
            elif in_unigrams and line.startswith(b"\\"):
                break
            elif in_unigrams and line.rstrip(b"\r\n").split(b"\t")[1:2] == [needle]:
                return False
    return True


def make_decoder(options: DecodingOptions, tokenizer: CharTokenizer) -> Decoder:
    if options.decoder == "greedy":
        return GreedyDecoder(tokenizer)
    return BeamSearchDecoder(options, tokenizer)


def add_word_timings(hyp: Hypothesis, log_probs: torch.Tensor, frame_seconds: float, space_id: int,
                     offset: float = 0.0) -> Hypothesis:
    """Fill `hyp.words` from its token frames. log_probs: (frames, vocab) of this utterance.

    A word spans from its first token's frame to one frame past its last token's.
    Its confidence is the mean, over its tokens, of the posterior probability of
    that token at the frame where it was emitted: 1.0 when the model was certain
    of every letter, lower when another symbol (or blank) competed. It does not
    include the LM. `offset` (seconds) shifts all times, for audio decoded in segments.
    """
    posteriors = log_probs.detach().float().cpu().exp()  # (frames, vocab)
    words, current = [], []  # current: [(token, frame)] of the word being built
    for token, frame in [*zip(hyp.tokens, hyp.frames), (space_id, -1)]:
        if token != space_id:
            current.append((token, frame))
            continue
        if current:
            confidence = sum(float(posteriors[f, t]) for t, f in current) / len(current)
            words.append(Word(text="", start=offset + current[0][1] * frame_seconds,
                              end=offset + (current[-1][1] + 1) * frame_seconds, confidence=confidence))
            current = []
    for word, text in zip(words, hyp.text.split()):
        word.text = text
    hyp.words = words
    return hyp
