"""`asr lm build` (an n-gram LM + lexicon from text), `asr lm download` (LibriSpeech's) and `asr tune`
(the LM weight and word score that suit a model on a dev set)."""

from __future__ import annotations

from asr.commands import add_command, add_precision_flag
from asr.config import ConfigError

# Default search grid of `asr tune`.
LM_WEIGHTS = "0,0.25,0.5,1,1.5,2"
WORD_SCORES = "-2,-1,0,1,2"


def add_commands(sub) -> None:
    from asr.lm import LIBRISPEECH_LMS

    p = add_command(sub, "lm", "build an n-gram LM + lexicon from text, or download LibriSpeech's")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = add_command(actions, "build", "n-gram LM (+ lexicon) from text corpora or manifests' transcripts (KenLM lmplz)")
    q.add_argument("--text", nargs="+", required=True,
                   help="corpus .txt/.txt.gz files (a paragraph or sentence per line), folders of them, "
                        "or .jsonl manifests")
    q.add_argument("--in-domain", nargs="+", help="in-domain text (e.g. training transcripts): all its words "
                                                   "join the vocabulary, its sentences the text")
    q.add_argument("--in-domain-copies", type=int, default=1, help="weight the in-domain text by repeating it")
    q.add_argument("--exclude", nargs="+", help="dev/test manifests or text whose sentences must not be used")
    q.add_argument("--order", type=int, default=3, help="n-gram order (2-6)")
    q.add_argument("--vocab-size", type=int, help="word: keep the N most frequent words (default: all)")
    q.add_argument("--prune", default="", help="lmplz count thresholds per order, e.g. 0,1,2 drops bigrams "
                                               "seen once and trigrams seen at most twice")
    q.add_argument("--memory", default="1G", help="lmplz sorting memory (e.g. 500M, 2G, 20%%)")
    q.add_argument("--quantize", type=int, choices=range(2, 26), metavar="BITS",
                   help="quantize lm.bin's probabilities to BITS bits (smaller file)")
    q.add_argument("--unit", choices=["word", "char"], default="word",
                   help="word n-gram + lexicon, or character n-gram for lexicon-free decoding")
    q.add_argument("--out", required=True, help="output folder (lm.bin, lm.arpa, lexicon.txt, build.json)")
    q.set_defaults(func=cmd_lm_build)
    q = add_command(actions, "download", "download a LibriSpeech LM (OpenSLR 11) and make its lexicon")
    q.add_argument("corpus", choices=["librispeech"], help="whose LM")
    q.add_argument("--name", choices=LIBRISPEECH_LMS, default=LIBRISPEECH_LMS[0], help="which LM")
    q.add_argument("--out", required=True, help="output folder (lm.arpa, lexicon.txt)")
    q.set_defaults(func=cmd_lm_download)
    _add_tune(sub)


def _add_tune(sub) -> None:
    from asr.config import add_flags
    from asr.configs import DecodingOptions

    p = add_command(sub, "tune", "search LM weight and word score on a dev set; store the best in CKPT")
    p.add_argument("--model", required=True, help="checkpoint file")
    p.add_argument("--manifest", required=True, help="dev manifest")
    p.add_argument("--lm", required=True, help="KenLM file (word LM with --lexicon, character LM without)")
    p.add_argument("--lexicon", help="flashlight lexicon (asr lm build writes one)")
    p.add_argument("--lm-weights", default=LM_WEIGHTS, help="comma-separated grid")
    p.add_argument("--word-scores", default=WORD_SCORES,
                   help="comma-separated grid; write --word-scores=-1,0,1 when it starts with a minus")
    p.add_argument("--trials", type=int, default=0, help="random search: this many pairs within the grid's ranges")
    p.add_argument("--seed", type=int, default=0, help="seed of the random search")
    p.add_argument("--out", help="write the tuned checkpoint here (default: update --model in place)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    add_flags(p, DecodingOptions, only=("beam_size", "beam_size_token", "beam_threshold", "unk_score"))
    add_precision_flag(p)
    p.set_defaults(func=cmd_tune)


def cmd_lm_build(args) -> int:
    from asr.lm import build_lm

    result = build_lm(args.text, args.order, args.out, unit=args.unit, in_domain=args.in_domain or (),
                      in_domain_copies=args.in_domain_copies, exclude=args.exclude or (),
                      vocab_size=args.vocab_size, prune=_ints(args.prune), memory=args.memory,
                      quantize=args.quantize)
    extra = f", lexicon {result['lexicon']} ({result['vocabulary']} words)" if result["lexicon"] else ""
    print(f"wrote {result['lm']} and {result['arpa']} ({args.unit} {args.order}-gram of {result['words']} "
          f"words in {result['sentences']} sentences, {result['seconds']:.0f} s){extra}")
    return 0


def cmd_lm_download(args) -> int:
    from asr.lm import download_librispeech_lm

    result = download_librispeech_lm(args.out, args.name)
    print(f"wrote {result['lm']} and {result['lexicon']} ({result['words']} words)")
    return 0


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",")) if text else ()
    except ValueError:
        raise ConfigError(f"expected comma-separated whole numbers, got {text!r}") from None


def cmd_tune(args) -> int:
    from asr.checkpoint import load_model
    from asr.config import flag_overrides
    from asr.data.manifest import read_manifest
    from asr.decode import DecodingOptions, override_decoding
    from asr.tune import candidates, compute_emissions, save_decoding, tune

    # Not the model's stored options: the LM and beam flags given (--lm is required), on the defaults.
    base = override_decoding(DecodingOptions(), flag_overrides(args, DecodingOptions))
    pairs = candidates(_floats(args.lm_weights), _floats(args.word_scores), args.trials, args.seed)
    loaded = load_model(args.model, args.device, args.precision)
    utterances = read_manifest(args.manifest)
    emissions = compute_emissions(loaded, utterances, device=args.device)
    best, rows = tune(emissions, utterances, loaded.tokenizer, base, pairs)
    top = min(rows, key=lambda row: row["wer"])
    save_decoding(args.model, best, args.out)
    print(f"best: lm_weight {best.lm_weight:g}  word_score {best.word_score:g}  dev-tuned WER {top['wer']:.2%} "
          f"CER {top['cer']:.2%} ({len(utterances)} utterances); saved as the default decoding of "
          f"{args.out or args.model}")
    return 0


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"expected comma-separated numbers, got {text!r}") from None
