"""The `asr` command: thin wrappers over the library.

    asr prepare kaldi|librispeech-dir|folder SRC OUT.jsonl   build a manifest
    asr prepare speechocean762 --root DIR | --corpus-dir DIR [--manifest-dir D] [--mirror URL]
    asr prepare librispeech --subsets S... --root DIR [--mirror URL]   download + one manifest per subset
    asr synth --text-manifest TRAIN.jsonl --out-dir D --manifest OUT.jsonl --count N
    asr train --config conf.yaml --exp-dir EXP [--train.lr 1e-3 ...]   (several GPUs: torchrun ... -m asr train)
    asr average --exp-dir EXP --last N|--best N   average epoch checkpoints
    asr evaluate --model CKPT --manifest M [--out-dir D] [--decoder beam --lm LM --lexicon LEX ...]
    asr transcribe FILE_OR_FOLDER... [--model CKPT] [--format txt|jsonl|srt|vtt]   (default model: bundled)
        [--output F [--resume]] [--jobs N]   append lines to F as files finish; skip those already there
    asr demo [--model CKPT]                   transcribe self-made sample speech, print WER
    asr export CKPT [--lm LM] [--decoding KEY=VALUE ...]   make CKPT the bundled model
    asr lm build --text CORPUS... --order N --out DIR [--unit word|char] [--vocab-size N]   n-gram LM + lexicon
    asr lm download librispeech --out DIR
    asr tune --model CKPT --manifest dev.jsonl --lm LM [--lexicon LEX]   best LM weights -> CKPT

Expected failures (bad audio, bad manifests, bad configs, missing checkpoints)
print one `error: ...` line and exit with status 1 or 2; no traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asr.config import ConfigError
from asr.errors import AsrError


def _amount(utterances) -> str:
    """'N utterances, H.HH h' for the summary line of a written manifest."""
    return f"{len(utterances)} utterances, {sum(u.duration for u in utterances) / 3600:.2f} h"


def cmd_prepare(args) -> int:
    from asr.corpora import importers
    from asr.data.manifest import write_manifest

    importer = {"kaldi": importers.import_kaldi_dir, "librispeech-dir": importers.import_librispeech,
                "folder": importers.import_folder}[args.layout]
    utterances = importer(args.source, jobs=args.jobs)
    write_manifest(utterances, args.manifest)
    print(f"wrote {args.manifest}: {_amount(utterances)}")
    return 0


def cmd_prepare_librispeech(args) -> int:
    from asr.corpora.librispeech import (
        download_librispeech,
        prepare_librispeech,
        read_md5sums,
    )

    checksums = read_md5sums(args.checksums) if args.checksums else None
    download_librispeech(args.subsets, args.root, mirror=args.mirror, checksums=checksums)
    if args.download_only:
        return 0
    manifest_dir = Path(args.manifest_dir or Path(args.root) / "manifests")
    for subset, utterances in prepare_librispeech(args.subsets, args.root, manifest_dir, jobs=args.jobs).items():
        print(f"{manifest_dir / subset}.jsonl: {_amount(utterances)}")
    return 0


def cmd_prepare_speechocean762(args) -> int:
    from asr.corpora.speechocean import download_speechocean762, prepare_speechocean762

    if args.corpus_dir and not args.manifest_dir:
        raise ConfigError("--corpus-dir needs --manifest-dir (where train.jsonl and dev.jsonl go)")
    corpus = args.corpus_dir or download_speechocean762(args.root, mirror=args.mirror, md5=args.md5)
    if args.download_only:
        print(f"corpus ready in {corpus}")
        return 0
    manifest_dir = Path(args.manifest_dir or Path(args.root) / "manifests")
    for name, utterances in prepare_speechocean762(corpus, manifest_dir, jobs=args.jobs).items():
        print(f"{manifest_dir / name}.jsonl: {_amount(utterances)}")
    return 0


def cmd_synth(args) -> int:
    from asr.data.manifest import read_manifest
    from asr.synth.synthesize import synthesize_corpus

    texts = [u.text for path in args.text_manifest for u in read_manifest(path)]
    engines = args.engines.split(",") if args.engines else None
    utterances = synthesize_corpus(texts, args.out_dir, args.manifest, args.count, seed=args.seed,
                                   engines=engines, extra_fraction=args.extra_fraction, jobs=args.jobs)
    speakers = len({u.speaker for u in utterances})
    print(f"wrote {args.manifest}: {_amount(utterances)}, {speakers} voices")
    return 0


def cmd_train(args) -> int:
    from asr.config import flag_overrides, load_yaml, merge
    from asr.train import RunConfig, run

    config = RunConfig()
    if args.config:
        config = merge(config, load_yaml(args.config))
    config = merge(config, flag_overrides(args, RunConfig))
    if not config.train_manifest:
        raise ConfigError("no training manifest: set train_manifest in the YAML or pass --train_manifest")
    trainer = run(config, args.exp_dir)
    if trainer.dist.is_main:  # under torchrun, one line rather than one per process
        print(f"finished at step {trainer.state.step}; checkpoints in {args.exp_dir}")
    return 0


def cmd_average(args) -> int:
    from asr.average import average

    out = average(args.exp_dir, last=args.last, best=args.best, out=args.out)
    print(f"wrote {out}")
    return 0


def decoding_options(args, loaded):
    """The checkpoint's stored decoding options, overridden by the decoding flags given.
    --lm or --lexicon without --decoder means beam search."""
    from asr.config import flag_overrides, merge
    from asr.decode import DecodingOptions
    from asr.pretrained import stored_decoding

    overrides = flag_overrides(args, DecodingOptions)
    if ("lm" in overrides or "lexicon" in overrides) and "decoder" not in overrides:
        overrides["decoder"] = "beam"
    return merge(stored_decoding(loaded), overrides)


def cmd_evaluate(args) -> int:
    from asr.checkpoint import load_model
    from asr.data.manifest import read_manifest
    from asr.decode import make_decoder
    from asr.evaluate import evaluate

    loaded = load_model(args.model, args.device)
    utterances = read_manifest(args.manifest)
    name = Path(args.manifest).name.removesuffix(".jsonl")
    decoder = make_decoder(decoding_options(args, loaded), loaded.tokenizer)
    out_dir = args.out_dir or str(Path(args.model).parent / "decode")
    summary = evaluate(loaded, utterances, decoder, out_dir, name, device=args.device, num_workers=args.jobs)
    print(f"{name}: WER {summary['wer']:.2%}  CER {summary['cer']:.2%}  ({summary['utterances']} utterances, "
          f"{summary['words']} words); details in {out_dir}")
    return 0


def cmd_transcribe(args) -> int:
    from asr.audio import AudioError
    from asr.checkpoint import load_model
    from asr.decode import make_decoder
    from asr.pretrained import default_model_path
    from asr.transcribe import (
        OutputError,
        TranscribeOptions,
        expand_inputs,
        transcribe_many,
    )

    loaded = load_model(args.model or default_model_path())
    decoder = make_decoder(decoding_options(args, loaded), loaded.tokenizer)
    paths = expand_inputs(args.inputs)
    if not paths:
        raise AudioError(" ".join(args.inputs), "no audio files found")
    if args.resume and not args.output:
        raise OutputError("--resume needs --output FILE (the file to continue)")
    windowing = TranscribeOptions(window_seconds=args.window, overlap_seconds=args.overlap, jobs=args.jobs)
    failures = transcribe_many(loaded, paths, decoder, args.format, options=windowing, output=args.output,
                               resume=args.resume)
    return 1 if failures else 0


def cmd_demo(args) -> int:
    from asr.demo import run_demo

    run_demo(args.model, args.audio_dir)
    return 0


def cmd_lm(args) -> int:
    from asr.lm import build_lm, download_librispeech

    if args.action == "build":
        if not args.text:
            raise ConfigError("asr lm build needs --text corpus.txt (or folders, .txt.gz files, .jsonl manifests)")
        result = build_lm(args.text, args.order, args.out, unit=args.unit, in_domain=args.in_domain or (),
                          in_domain_copies=args.in_domain_copies, exclude=args.exclude or (),
                          vocab_size=args.vocab_size, prune=_ints(args.prune), memory=args.memory,
                          quantize=args.quantize)
        extra = f", lexicon {result['lexicon']} ({result['vocabulary']} words)" if result["lexicon"] else ""
        print(f"wrote {result['lm']} and {result['arpa']} ({args.unit} {args.order}-gram of {result['words']} "
              f"words in {result['sentences']} sentences, {result['seconds']:.0f} s){extra}")
    else:
        result = download_librispeech(args.out, args.name)
        print(f"wrote {result['lm']} and {result['lexicon']} ({result['words']} words)")
    return 0


def cmd_tune(args) -> int:
    from asr.checkpoint import load_model
    from asr.config import flag_overrides, merge
    from asr.data.manifest import read_manifest
    from asr.decode import DecodingOptions
    from asr.tune import candidates, compute_emissions, save_decoding, tune

    loaded = load_model(args.model, args.device)
    utterances = read_manifest(args.manifest)
    base = merge(DecodingOptions(decoder="beam", lm=args.lm, lexicon=args.lexicon),
                 flag_overrides(args, DecodingOptions))
    pairs = candidates(_floats(args.lm_weights), _floats(args.word_scores), args.trials, args.seed)
    emissions = compute_emissions(loaded, utterances, device=args.device)
    best, rows = tune(emissions, utterances, loaded.tokenizer, base, pairs)
    top = min(rows, key=lambda row: row["wer"])
    save_decoding(args.model, best, args.out)
    print(f"best: lm_weight {best.lm_weight:g}  word_score {best.word_score:g}  dev-tuned WER {top['wer']:.2%} "
          f"CER {top['cer']:.2%} ({len(utterances)} utterances); saved as the default decoding of "
          f"{args.out or args.model}")
    return 0


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",")) if text else ()
    except ValueError:
        raise ConfigError(f"expected comma-separated whole numbers, got {text!r}") from None


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"expected comma-separated numbers, got {text!r}") from None


def cmd_export(args) -> int:
    from asr.pretrained import PRETRAINED_DIR, export_model

    pairs = [item.partition("=") for item in args.decoding]
    bad = [key for key, sep, _ in pairs if not sep]
    if bad:
        raise ConfigError(f"--decoding expects KEY=VALUE, got {bad[0]!r}")
    path = export_model(args.checkpoint, args.out_dir or PRETRAINED_DIR, lm=args.lm, lexicon=args.lexicon,
                        decoding={key: value for key, _, value in pairs})
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def _add_corpus_download_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by the `asr prepare CORPUS` commands that download from OpenSLR."""
    parser.add_argument("--mirror", help="URL standing for https://www.openslr.org/resources (file:// works too)")
    parser.add_argument("--download-only", action="store_true", help="download and extract, write no manifests")
    parser.add_argument("--jobs", type=int, default=None, help="processes reading audio headers (default: all cores)")


def build_parser() -> argparse.ArgumentParser:
    from asr import __version__
    from asr.config import add_flags
    from asr.corpora.librispeech import SUBSETS as LIBRISPEECH_SUBSETS
    from asr.decode import DecodingOptions
    from asr.lm import LIBRISPEECH_LMS
    from asr.train import RunConfig
    from asr.tune import LM_WEIGHTS, WORD_SCORES

    parser = argparse.ArgumentParser(prog="asr", description="BiLSTM-CTC speech recognition toolkit")
    parser.add_argument("--version", action="version", version=f"asr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="build JSONL manifests from a corpus on disk (or download it first)")
    layouts = p.add_subparsers(dest="layout", required=True, metavar="LAYOUT")
    for layout, source in (("kaldi", "Kaldi data dir"), ("librispeech-dir", "LibriSpeech subset folder"),
                           ("folder", "folder of audio files with .txt transcripts")):
        q = layouts.add_parser(layout, help=f"one manifest from a {source}")
        q.add_argument("source", help=source)
        q.add_argument("manifest", help="output manifest (.jsonl)")
        q.add_argument("--jobs", type=int, default=None, help="processes reading audio headers (default: all cores)")
        q.set_defaults(func=cmd_prepare)
    q = layouts.add_parser("librispeech", help="download LibriSpeech subsets, write a manifest for each")
    q.add_argument("--subsets", nargs="+", required=True, choices=LIBRISPEECH_SUBSETS, metavar="SUBSET",
                   help=", ".join(LIBRISPEECH_SUBSETS))
    q.add_argument("--root", required=True, help="archives go here, extracted audio in ROOT/LibriSpeech")
    q.add_argument("--manifest-dir", help="where SUBSET.jsonl go (default: ROOT/manifests)")
    q.add_argument("--checksums", help="md5sum-style file replacing the published MD5s (for private mirrors)")
    _add_corpus_download_flags(q)
    q.set_defaults(func=cmd_prepare_librispeech)
    q = layouts.add_parser("speechocean762", help="download speechocean762 (or use a copy), write train/dev manifests")
    source = q.add_mutually_exclusive_group(required=True)
    source.add_argument("--root", help="download here: archive in ROOT, corpus in ROOT/speechocean762")
    source.add_argument("--corpus-dir", help="use this copy instead (train/ and dev/ or test/), no download")
    q.add_argument("--manifest-dir", help="where train.jsonl and dev.jsonl go (default: ROOT/manifests)")
    q.add_argument("--md5", help="MD5 of the mirror's archive (default: check the OpenSLR archive's size)")
    _add_corpus_download_flags(q)
    q.set_defaults(func=cmd_prepare_speechocean762)

    p = sub.add_parser("synth", help="synthesize extra training speech (espeak-ng, flite, piper)")
    p.add_argument("--text-manifest", action="append", default=[], metavar="M",
                   help="take transcripts from this (training!) manifest; repeatable")
    p.add_argument("--out-dir", required=True, help="folder for the wav files")
    p.add_argument("--manifest", required=True, help="output manifest (.jsonl)")
    p.add_argument("--count", type=int, required=True, help="utterances to make (a rerun skips finished ones)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engines", help="comma-separated subset of espeak,flite,piper (default: all installed)")
    p.add_argument("--extra-fraction", type=float, default=0.4,
                   help="share of sentences made up here rather than taken from --text-manifest")
    p.add_argument("--jobs", type=int, default=2, help="worker processes")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("train", help="train a model (resumes automatically from EXP/last.pt)")
    p.add_argument("--config", help="recipe YAML overriding the defaults")
    p.add_argument("--exp-dir", required=True, help="folder for checkpoints, logs and the resolved config")
    add_flags(p, RunConfig)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("average", help="average the weights of the last N or best N epoch checkpoints")
    p.add_argument("--exp-dir", required=True, help="training folder (trained with --train.keep_last K)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--last", type=int, default=0, metavar="N", help="the N newest epoch-*.pt")
    which.add_argument("--best", type=int, default=0, metavar="N", help="the N with the lowest dev WER")
    p.add_argument("--out", help="output checkpoint (default: EXP/avg-last-N.pt or EXP/avg-best-N.pt)")
    p.set_defaults(func=cmd_average)

    p = sub.add_parser("evaluate", help="decode a manifest and report WER/CER")
    p.add_argument("--model", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--out-dir", help="where recogs-*/wer-summary-* go (default: next to the model)")
    add_flags(p, DecodingOptions)  # defaults: the model's stored decoding options
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=1, help="DataLoader worker processes")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("transcribe", help="print the transcript of audio files or folders")
    p.add_argument("inputs", nargs="+", metavar="FILE_OR_FOLDER")
    p.add_argument("--model", help="checkpoint to use (default: the bundled model, asr/pretrained/)")
    p.add_argument("--format", choices=["txt", "jsonl", "srt", "vtt"], default="txt",
                   help="jsonl carries timed words with confidences; srt/vtt: subtitles (one file per call)")
    add_flags(p, DecodingOptions)  # defaults: the model's stored decoding options
    p.add_argument("--output", help="append one line per finished file here (txt or jsonl) instead of stdout")
    p.add_argument("--resume", action="store_true", help="skip the files already in --output")
    p.add_argument("--jobs", type=int, default=1, help="threads reading audio ahead of the model")
    p.add_argument("--window", type=float, default=20.0, help="seconds of audio per model input (long files)")
    p.add_argument("--overlap", type=float, default=4.0, help="seconds shared by neighbouring windows")
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("demo", help="transcribe sentences synthesized with espeak-ng and print the WER")
    p.add_argument("--model", help="checkpoint to use (default: the bundled model)")
    p.add_argument("--audio-dir", help="keep the synthesized wav files here (default: a temporary folder)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("lm", help="build an n-gram LM + lexicon from text, or download LibriSpeech's")
    p.add_argument("action", choices=["build", "download"])
    p.add_argument("corpus", nargs="?", choices=["librispeech"], help="with download: which LM")
    p.add_argument("--text", nargs="+", help="build: corpus .txt/.txt.gz files (a paragraph or sentence per line), "
                                              "folders of them, or .jsonl manifests")
    p.add_argument("--in-domain", nargs="+", help="build: in-domain text (e.g. training transcripts): all its words "
                                                   "join the vocabulary, its sentences the text")
    p.add_argument("--in-domain-copies", type=int, default=1, help="build: weight the in-domain text by repeating it")
    p.add_argument("--exclude", nargs="+", help="build: dev/test manifests or text whose sentences must not be used")
    p.add_argument("--order", type=int, default=3, help="build: n-gram order (2-6)")
    p.add_argument("--vocab-size", type=int, help="build, word: keep the N most frequent words (default: all)")
    p.add_argument("--prune", default="", help="build: lmplz count thresholds per order, e.g. 0,1,2 drops bigrams "
                                               "seen once and trigrams seen at most twice")
    p.add_argument("--memory", default="1G", help="build: lmplz sorting memory (e.g. 500M, 2G, 20%%)")
    p.add_argument("--quantize", type=int, choices=range(2, 26), metavar="BITS",
                   help="build: quantize lm.bin's probabilities to BITS bits (smaller file)")
    p.add_argument("--unit", choices=["word", "char"], default="word",
                   help="build: word n-gram + lexicon, or character n-gram for lexicon-free decoding")
    p.add_argument("--name", choices=LIBRISPEECH_LMS, default=LIBRISPEECH_LMS[0], help="download: which LM")
    p.add_argument("--out", required=True, help="output folder (lm.bin, lm.arpa, lexicon.txt, build.json)")
    p.set_defaults(func=cmd_lm)

    p = sub.add_parser("tune", help="search LM weight and word score on a dev set; store the best in CKPT")
    p.add_argument("--model", required=True)
    p.add_argument("--manifest", required=True, help="dev manifest")
    p.add_argument("--lm", required=True, help="KenLM file (word LM with --lexicon, character LM without)")
    p.add_argument("--lexicon")
    p.add_argument("--lm-weights", default=",".join(map(str, LM_WEIGHTS)), help="comma-separated grid")
    p.add_argument("--word-scores", default=",".join(map(str, WORD_SCORES)),
                   help="comma-separated grid; write --word-scores=-1,0,1 when it starts with a minus")
    p.add_argument("--trials", type=int, default=0, help="random search: this many pairs within the grid's ranges")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the tuned checkpoint here (default: update --model in place)")
    p.add_argument("--device", default="cpu")
    for flag in ("--beam_size", "--beam_size_token", "--beam_threshold", "--unk_score"):
        p.add_argument(flag, dest=flag[2:], default=argparse.SUPPRESS, help="beam option kept while tuning")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("export", help="copy a checkpoint (no train_state) + LM into the bundled model folder")
    p.add_argument("checkpoint")
    p.add_argument("--out-dir", help="destination folder (default: asr/pretrained/ of this installation)")
    p.add_argument("--lm", help="KenLM file for beam decoding, copied next to the model")
    p.add_argument("--lexicon", help="lexicon file for beam decoding, copied next to the model")
    p.add_argument("--decoding", nargs="*", default=[], metavar="KEY=VALUE",
                   help="default decoding options to store, e.g. decoder=beam lm_weight=1.5")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (AsrError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
