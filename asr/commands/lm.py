"""`asr lm build` (an n-gram LM + lexicon from text) and `asr lm download` (LibriSpeech's)."""

from __future__ import annotations

from asr.commands import add_command
from asr.config import ConfigError


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
