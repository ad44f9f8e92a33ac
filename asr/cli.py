"""The `asr` command: thin wrappers over the library.

    asr prepare kaldi|librispeech-dir|folder SRC OUT.jsonl   build a manifest
    asr prepare speechocean762 --root DIR | --corpus-dir DIR [--manifest-dir D] [--mirror URL]
    asr prepare librispeech --subsets S... --root DIR [--mirror URL]   download + one manifest per subset
    asr synth --prompts TRAIN.jsonl [--prompts TEXT_DIR:0.5] --out-dir D --manifest OUT.jsonl --count N
    asr train --config conf.yaml --exp-dir EXP [--train.lr 1e-3 ...]   (several GPUs: torchrun ... -m asr train)
    asr average --exp-dir EXP --last N|--best N   average epoch checkpoints
    asr plot EXP_DIR... [--out FILE]          training curves of one or several runs in one PNG
    asr evaluate --model CKPT --manifest M [--out-dir D] [--decoder beam --lm LM --lexicon LEX ...]
    asr transcribe FILE_OR_FOLDER... [--model CKPT] [--format txt,jsonl,srt,vtt|all]   (default model: bundled)
        [--output F | --output-dir D] [--resume]   a line per file in F, or a file per input and format in D
    asr demo [--model CKPT]                   transcribe self-made sample speech, print WER
    asr export CKPT [--lm LM] [--decoding KEY=VALUE ...]   make CKPT the bundled model
    asr lm build --text CORPUS... --order N --out DIR [--unit word|char] [--vocab-size N]   n-gram LM + lexicon
    asr lm download librispeech --out DIR
    asr tune --model CKPT --manifest dev.jsonl --lm LM [--lexicon LEX]   best LM weights -> CKPT
    asr serve [--model CKPT] [--host 127.0.0.1] [--port 8000]   HTTP API (OpenAI-style) + a web page
    asr adapt DATA --out MODEL.pt [--model BASE] [--text FILE] [--steps N | --minutes M]   fine-tune on one voice

Expected failures (bad audio, bad manifests, bad configs, missing checkpoints)
print one `error: ...` line and exit with status 1 or 2; no traceback.

Flags are kebab-case (`--beam-size`, `--train.max-batch-seconds`); the snake_case
spellings of asr 0.1 still work for this release, with a note on stderr
(`modern_spelling`). Building the parser imports no torch, so every `--help` is
instant; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asr.config import ConfigError, add_flags
from asr.errors import AsrError

# Default search grid of `asr tune`, and the most random trials it takes.
LM_WEIGHTS = "0,0.25,0.5,1,1.5,2"
WORD_SCORES = "-2,-1,0,1,2"
MAX_TRIALS = 10_000


def say(line: str) -> None:
    """Write one line to stderr in a single call. print() writes the text and its newline
    separately when stderr is unbuffered (PYTHONUNBUFFERED), and then the lines of several
    torchrun ranks interleave."""
    sys.stderr.write(line + "\n")


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
    from asr.synth.corpus import plan_jobs, synthesize_corpus
    from asr.synth.prompts import load_sources

    sources = load_sources(args.prompts, args.grammar_weight, args.exclude_text, args.prompt_pool, args.seed)
    engines = args.engines.split(",") if args.engines else None
    jobs = plan_jobs(sources, args.count, seed=args.seed, engines=engines, split=args.split)
    utterances, failures = synthesize_corpus(jobs, args.out_dir, args.manifest, workers=args.jobs,
                                             timeout=args.timeout)
    speakers = len({u.speaker for u in utterances})
    skipped = f"; {len(failures)} skipped (a rerun retries them)" if failures else ""
    print(f"wrote {args.manifest}: {_amount(utterances)}, {speakers} voice settings{skipped}")
    return 0


def cmd_train(args) -> int:
    from asr.config import flag_overrides, load_yaml, merge
    from asr.train import RunConfig, run

    config = RunConfig()
    if args.config:
        config = merge(config, load_yaml(args.config))
    config = merge(config, flag_overrides(args, RunConfig))
    if not config.train_manifest:
        raise ConfigError("no training manifest: set train_manifest in the YAML or pass --train-manifest")
    trainer = run(config, args.exp_dir)
    if trainer.stop_signal is not None:  # saved and said so; shells expect 128 + signal number
        return 128 + trainer.stop_signal
    if trainer.dist.is_main:  # under torchrun, one line rather than one per process
        print(f"finished at step {trainer.state.step}; checkpoints in {args.exp_dir}")
    return 0


def cmd_average(args) -> int:
    from asr.average import average

    out = average(args.exp_dir, last=args.last, best=args.best, out=args.out)
    print(f"wrote {out}")
    return 0


def cmd_plot(args) -> int:
    from asr.plot import plot_runs

    out = plot_runs(args.exp_dirs, args.out)
    print(f"wrote {out} ({len(args.exp_dirs)} run(s))")
    return 0


def _add_threads_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, help="torch threads for the model (default: half the cores; "
                                                     "1 when other jobs share the machine)")


def decoding_options(args, loaded):
    """The model's decoding options with the decoding flags given on top (asr.decode.override_decoding)."""
    from asr.config import flag_overrides
    from asr.decode import DecodingOptions, override_decoding

    return override_decoding(loaded.decoding, flag_overrides(args, DecodingOptions))


def cmd_evaluate(args) -> int:
    from asr.checkpoint import load_model
    from asr.data.manifest import read_manifest
    from asr.decode import make_decoder
    from asr.evaluate import evaluate
    from asr.threads import set_threads

    set_threads(args.threads)
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
    from asr.transcribe import FORMATS, LINE_FORMATS, OutputError, expand_inputs, output_names

    formats = FORMATS if args.format == "all" else tuple(dict.fromkeys(args.format.split(",")))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ConfigError(f"unknown --format {unknown[0]!r} (choose from: {', '.join(FORMATS)}, or all)")
    paths, empty = expand_inputs(args.inputs)
    for folder in empty:
        say(f"warning: {folder}: no audio files in this folder")
    if not paths:
        raise AudioError(" ".join(args.inputs), "no audio files found")
    if args.output and args.output_dir:
        raise OutputError("--output and --output-dir exclude each other")
    if args.resume and not (args.output or args.output_dir):
        raise OutputError("--resume needs --output FILE or --output-dir DIR (what to continue)")
    if not args.output_dir:
        if len(formats) > 1:
            raise OutputError(f"{len(formats)} formats need --output-dir DIR (a file per input and format)")
        if args.output and formats[0] not in LINE_FORMATS:
            raise OutputError(f"--output appends a line per file: use --format {' or '.join(LINE_FORMATS)}, "
                              f"or --output-dir DIR for a {formats[0]} file per input")
        if not args.output and formats[0] in ("srt", "vtt") and len(paths) > 1:
            raise OutputError(f"{formats[0]} on stdout takes one input, got {len(paths)} files; "
                              f"use --output-dir DIR for a {formats[0]} file per input")
    names = output_names(paths, args.inputs) if args.output_dir else None

    from asr.checkpoint import load_model
    from asr.config import flag_overrides, merge
    from asr.decode import make_decoder
    from asr.pretrained import default_model_path
    from asr.threads import set_threads
    from asr.transcribe import TranscribeOptions, transcribe_many
    from asr.vad import SegmentOptions

    set_threads(args.threads)
    options = merge(TranscribeOptions(), {**flag_overrides(args, TranscribeOptions),
                                          "segments": flag_overrides(args, SegmentOptions)})
    loaded = load_model(args.model or default_model_path())
    decoder = make_decoder(decoding_options(args, loaded), loaded.tokenizer)
    failures = transcribe_many(loaded, paths, decoder, formats, options=options, output=args.output,
                               output_dir=args.output_dir, names=names, resume=args.resume)
    return 1 if failures else 0


def cmd_demo(args) -> int:
    from asr.demo import run_demo

    run_demo(args.model, args.audio_dir)
    return 0


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
    from asr.lm import download_librispeech

    result = download_librispeech(args.out, args.name)
    print(f"wrote {result['lm']} and {result['lexicon']} ({result['words']} words)")
    return 0


def cmd_tune(args) -> int:
    import dataclasses

    from asr.checkpoint import load_model
    from asr.config import flag_overrides
    from asr.data.manifest import read_manifest
    from asr.decode import DecodingOptions, override_decoding
    from asr.tune import candidates, compute_emissions, save_decoding, tune

    # Not the model's stored options: the LM and beam flags given (--lm is required), on the defaults.
    base = override_decoding(DecodingOptions(), flag_overrides(args, DecodingOptions))
    if not 0 <= args.trials <= MAX_TRIALS:
        raise ConfigError(f"--trials must be between 0 and {MAX_TRIALS}, got {args.trials}")
    pairs = candidates(_floats(args.lm_weights), _floats(args.word_scores), args.trials, args.seed)
    for lm_weight, word_score in pairs:  # out-of-range weights fail here, before the model runs
        dataclasses.replace(base, lm_weight=lm_weight, word_score=word_score)
    loaded = load_model(args.model, args.device)
    utterances = read_manifest(args.manifest)
    emissions = compute_emissions(loaded, utterances, device=args.device)
    best, rows = tune(emissions, utterances, loaded.tokenizer, base, pairs)
    top = min(rows, key=lambda row: row["wer"])
    save_decoding(args.model, best, args.out)
    print(f"best: lm_weight {best.lm_weight:g}  word_score {best.word_score:g}  dev-tuned WER {top['wer']:.2%} "
          f"CER {top['cer']:.2%} ({len(utterances)} utterances); saved as the default decoding of "
          f"{args.out or args.model}")
    return 0


def cmd_adapt(args) -> int:
    """Fine-tune a model on DATA with a progress bar; Ctrl-C writes the best weights so far and exits 130."""
    import signal
    import threading

    from tqdm import tqdm

    from asr.adapt.job import AdaptConfig, AdaptJob, adapt
    from asr.config import flag_overrides, merge
    from asr.threads import set_threads

    set_threads(args.threads)
    config = merge(AdaptConfig(), flag_overrides(args, AdaptConfig))
    job = AdaptJob(data=args.data, out=args.out, base=args.model or "", text=args.text, replay=args.replay or "")
    stop = threading.Event()

    def on_signal(_signum, _frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        tqdm.write("stopping after this step; writing the best model so far (Ctrl-C again: stop at once)")

    bar = tqdm(total=1, unit="step", dynamic_ncols=True, disable=None, desc="adapting")

    def on_progress(progress) -> None:
        bar.total = progress.steps
        bar.n = progress.step
        held = f"{progress.held_out_loss:.3f}" if progress.held_out_loss is not None else "-"
        bar.set_postfix_str(f"loss {progress.loss:.3f}  held-out {held}  {progress.phase}")
        if bar.disable and progress.phase == "training" and progress.step % max(1, progress.steps // 10) == 0:
            eta = f"  ETA {progress.eta_s / 60:.1f} min" if progress.eta_s is not None else ""
            say(f"step {progress.step}/{progress.steps}  loss {progress.loss:.3f}  held-out {held}{eta}")

    previous = signal.signal(signal.SIGINT, on_signal)
    try:
        summary = adapt(job, config, on_progress, stop, log=tqdm.write)
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    held = (f"; held-out loss {summary['held_out_loss_before']:.3f} -> {summary['held_out_loss_after']:.3f}"
            if summary["held_out"] else "")
    print(f"wrote {summary['out']}: {summary['steps']} steps in {summary['seconds']:.0f} s, training loss "
          f"{summary['loss_before']:.3f} -> {summary['loss_after']:.3f}{held}; {len(summary['new_words'])} new "
          f"word(s) in its lexicon{'; decoding weights tuned on the held-out part' if summary['tuned'] else ''}")
    if summary["interrupted"]:
        say("interrupted: wrote the best model so far")
        return 130
    return 0


def cmd_serve(args) -> int:
    from asr.checkpoint import load_model
    from asr.config import flag_overrides, merge
    from asr.pretrained import default_model_path
    from asr.serve import ServeConfig, listen, require_extra, serve
    from asr.serve.recognizer import Recognizer

    require_extra()  # before loading anything: one line saying what to install
    config = merge(ServeConfig(), flag_overrides(args, ServeConfig))
    with listen(args.host, args.port) as sock:  # a port in use fails before the model loads
        loaded = load_model(args.model or default_model_path())
        serve(Recognizer(loaded, decoding_options(args, loaded), config.workers), config, sock)
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


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's help ends with its default, unless there is none to show (None, False, a
    flag whose default is decided later) or the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("(default:" in text or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


def _add_corpus_download_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by the `asr prepare CORPUS` commands that download from OpenSLR."""
    parser.add_argument("--mirror", help="URL standing for https://www.openslr.org/resources (file:// works too)")
    parser.add_argument("--download-only", action="store_true", help="download and extract, write no manifests")
    parser.add_argument("--jobs", type=int, default=None, help="processes reading audio headers (default: all cores)")


def build_parser() -> argparse.ArgumentParser:
    """The `asr` command line. Imports nothing heavy (no torch): `--help` must be instant."""
    from asr import __version__
    from asr.corpora.librispeech import SUBSETS as LIBRISPEECH_SUBSETS
    from asr.lm import LIBRISPEECH_LMS
    from asr.synth.voices import DEFAULT_TIMEOUT as SYNTH_TIMEOUT  # numpy, no torch

    parser = argparse.ArgumentParser(prog="asr", description="BiLSTM-CTC speech recognition toolkit",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"asr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(subparsers, name: str, summary: str, **kwargs) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, help=summary, description=summary, formatter_class=HelpFormatter,
                                     **kwargs)

    p = command(sub, "prepare", "build JSONL manifests from a corpus on disk (or download it first)")
    layouts = p.add_subparsers(dest="layout", required=True, metavar="LAYOUT")
    for layout, source in (("kaldi", "Kaldi data dir"), ("librispeech-dir", "LibriSpeech subset folder"),
                           ("folder", "folder of audio files with .txt transcripts")):
        q = command(layouts, layout, f"one manifest from a {source}")
        q.add_argument("source", help=source)
        q.add_argument("manifest", help="output manifest (.jsonl)")
        q.add_argument("--jobs", type=int, default=None, help="processes reading audio headers (default: all cores)")
        q.set_defaults(func=cmd_prepare)
    q = command(layouts, "librispeech", "download LibriSpeech subsets, write a manifest for each")
    q.add_argument("--subsets", nargs="+", required=True, choices=LIBRISPEECH_SUBSETS, metavar="SUBSET",
                   help=", ".join(LIBRISPEECH_SUBSETS))
    q.add_argument("--root", required=True, help="archives go here, extracted audio in ROOT/LibriSpeech")
    q.add_argument("--manifest-dir", help="where SUBSET.jsonl go (default: ROOT/manifests)")
    q.add_argument("--checksums", help="md5sum-style file replacing the published MD5s (for private mirrors)")
    _add_corpus_download_flags(q)
    q.set_defaults(func=cmd_prepare_librispeech)
    q = command(layouts, "speechocean762", "download speechocean762 (or use a copy), write train/dev manifests")
    source = q.add_mutually_exclusive_group(required=True)
    source.add_argument("--root", help="download here: archive in ROOT, corpus in ROOT/speechocean762")
    source.add_argument("--corpus-dir", help="use this copy instead (train/ and dev/ or test/), no download")
    q.add_argument("--manifest-dir", help="where train.jsonl and dev.jsonl go (default: ROOT/manifests)")
    q.add_argument("--md5", help="MD5 of the mirror's archive (default: check the OpenSLR archive's size)")
    _add_corpus_download_flags(q)
    q.set_defaults(func=cmd_prepare_speechocean762)

    p = command(sub, "synth", "synthesize extra training speech (espeak-ng, flite, festival, piper)")
    p.add_argument("--prompts", action="append", default=[], metavar="PATH[:WEIGHT]",
                   help="what to read: a (training!) manifest, a text file (.txt, .txt.gz) or a folder of them, "
                        "drawn from with this relative weight (default 1); repeatable")
    p.add_argument("--grammar-weight", type=float, default=0.25,
                   help="relative weight of sentences made up here (digits, numbers, a small grammar); 0: none")
    p.add_argument("--exclude-text", action="append", default=[], metavar="PATH",
                   help="manifest or text whose sentences are never prompts (dev and test text); repeatable")
    p.add_argument("--prompt-pool", type=int, default=0, metavar="N",
                   help="draw from a seeded sample of N sentences per text source (0: all of them)")
    p.add_argument("--split", choices=["train", "dev"], default="train",
                   help="dev: only the voices and text that train never uses (a synthetic dev set)")
    p.add_argument("--out-dir", required=True, help="folder for the audio files (Ogg/Opus)")
    p.add_argument("--manifest", required=True, help="output manifest (.jsonl)")
    p.add_argument("--count", type=int, required=True, help="utterances to make (a rerun skips finished ones)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engines", help="comma-separated subset of espeak,flite,festival,piper (default: all installed)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes")
    p.add_argument("--timeout", type=float, default=SYNTH_TIMEOUT, help="seconds an engine may take for one utterance")
    p.set_defaults(func=cmd_synth)

    p = command(sub, "train", "train a model (resumes automatically from EXP/last.pt)",
                epilog="Every config field is a flag: --SECTION.FIELD overrides the YAML, which overrides the "
                       "defaults shown. Tuples and lists take YAML: --train.speeds '[0.9, 1.0, 1.1]'.")
    p.add_argument("--config", help="recipe YAML overriding the defaults")
    p.add_argument("--exp-dir", required=True, help="folder for checkpoints, logs and the resolved config")
    add_flags(p, "asr.train:RunConfig")
    p.set_defaults(func=cmd_train)

    p = command(sub, "average", "average the weights of the last N or best N epoch checkpoints")
    p.add_argument("--exp-dir", required=True, help="training folder (trained with --train.keep-last K)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--last", type=int, default=0, metavar="N", help="the N newest epoch-*.pt")
    which.add_argument("--best", type=int, default=0, metavar="N", help="the N with the lowest dev WER")
    p.add_argument("--out", help="output checkpoint (default: EXP/avg-last-N.pt or EXP/avg-best-N.pt)")
    p.set_defaults(func=cmd_average)

    p = command(sub, "plot", "draw the training curves (loss, lr, dev WER/CER) of one or several runs")
    p.add_argument("exp_dirs", nargs="+", metavar="EXP_DIR", help="training folders (each with metrics.jsonl)")
    p.add_argument("--out", default="curves.png", help="PNG to write")
    p.set_defaults(func=cmd_plot)

    p = command(sub, "evaluate", "decode a manifest and report WER/CER")
    p.add_argument("--model", required=True, help="checkpoint file")
    p.add_argument("--manifest", required=True, help="JSONL manifest with reference transcripts")
    p.add_argument("--out-dir", help="where recogs-*/wer-summary-* go (default: MODEL's folder/decode)")
    add_flags(p, "asr.decode:DecodingOptions", default_note="from the model")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--jobs", type=int, default=1, help="DataLoader worker processes")
    _add_threads_flag(p)
    p.set_defaults(func=cmd_evaluate)

    p = command(sub, "transcribe", "print or write the transcripts of audio files or folders (any length)")
    p.add_argument("inputs", nargs="+", metavar="FILE_OR_FOLDER", help="audio files, and folders searched for them")
    p.add_argument("--model", help="checkpoint to use (default: the bundled model, asr/pretrained/)")
    p.add_argument("--format", default="txt", metavar="FORMATS",
                   help="txt, jsonl (timed words with confidences), srt, vtt (subtitles): one, several "
                        "comma-separated (with --output-dir), or all")
    p.add_argument("--output", metavar="FILE",
                   help="append one line per finished file here (txt or jsonl) instead of stdout")
    p.add_argument("--output-dir", metavar="DIR",
                   help="write DIR/NAME.FORMAT for each input NAME.wav and each format instead of stdout")
    p.add_argument("--resume", action="store_true", help="skip the inputs already in --output or --output-dir")
    add_flags(p, "asr.decode:DecodingOptions", default_note="from the model")
    add_flags(p, "asr.vad:SegmentOptions")
    add_flags(p, "asr.transcribe:TranscribeOptions", only=("batch_segments", "jobs"))
    _add_threads_flag(p)
    p.set_defaults(func=cmd_transcribe)

    p = command(sub, "demo", "transcribe sentences synthesized with espeak-ng and print the WER")
    p.add_argument("--model", help="checkpoint to use (default: the bundled model)")
    p.add_argument("--audio-dir", help="keep the synthesized wav files here (default: a temporary folder)")
    p.set_defaults(func=cmd_demo)

    p = command(sub, "lm", "build an n-gram LM + lexicon from text, or download LibriSpeech's")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = command(actions, "build", "n-gram LM (+ lexicon) from text corpora or manifests' transcripts (KenLM lmplz)")
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
    q = command(actions, "download", "download a LibriSpeech LM (OpenSLR 11) and make its lexicon")
    q.add_argument("corpus", choices=["librispeech"], help="whose LM")
    q.add_argument("--name", choices=LIBRISPEECH_LMS, default=LIBRISPEECH_LMS[0], help="which LM")
    q.add_argument("--out", required=True, help="output folder (lm.arpa, lexicon.txt)")
    q.set_defaults(func=cmd_lm_download)

    p = command(sub, "tune", "search LM weight and word score on a dev set; store the best in CKPT")
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
    add_flags(p, "asr.decode:DecodingOptions", only=("beam_size", "beam_size_token", "beam_threshold", "unk_score"))
    p.set_defaults(func=cmd_tune)

    p = command(sub, "adapt", "fine-tune a model on one voice's recordings (a folder of audio + .txt, or a manifest)",
                epilog="The result is a model like any other: asr transcribe --model OUT, asr evaluate, asr serve. "
                       "Its LM and lexicon are written beside it (OUT_STEM.lm.bin, OUT_STEM.lexicon.txt): move "
                       "or copy them together.")
    p.add_argument("data", metavar="DATA", help="folder of audio files with same-named .txt transcripts, or a .jsonl "
                                                "manifest")
    p.add_argument("--out", required=True, metavar="MODEL.pt", help="adapted checkpoint to write")
    p.add_argument("--model", help="checkpoint to adapt (default: the bundled model, asr/pretrained/)")
    p.add_argument("--text", action="append", default=[], metavar="FILE",
                   help="text whose words (names, domain words) join the lexicon; repeatable")
    p.add_argument("--replay", metavar="MANIFEST",
                   help="some of the base model's training data, replayed so that it forgets less")
    add_flags(p, "asr.adapt.job:AdaptConfig")
    _add_threads_flag(p)
    p.set_defaults(func=cmd_adapt)

    p = command(sub, "serve", "HTTP API (OpenAI-style /v1/audio/transcriptions) and a web page to try a model")
    p.add_argument("--model", help="checkpoint to serve (default: the bundled model, asr/pretrained/)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: this machine only); 0.0.0.0 opens it to other hosts")
    p.add_argument("--port", type=int, default=8000, help="TCP port (0: any free one; the URL is printed)")
    add_flags(p, "asr.decode:DecodingOptions", default_note="from the model")
    add_flags(p, "asr.serve:ServeConfig")
    p.set_defaults(func=cmd_serve)

    p = command(sub, "export", "copy a checkpoint (no train_state) + LM into the bundled model folder")
    p.add_argument("checkpoint", help="checkpoint file")
    p.add_argument("--out-dir", help="destination folder (default: asr/pretrained/ of this installation)")
    p.add_argument("--lm", help="KenLM file for beam decoding, copied next to the model")
    p.add_argument("--lexicon", help="lexicon file for beam decoding, copied next to the model")
    p.add_argument("--decoding", nargs="*", default=[], metavar="KEY=VALUE",
                   help="default decoding options to store, e.g. decoder=beam lm_weight=1.5")
    p.set_defaults(func=cmd_export)
    return parser


def modern_spelling(argv: list[str]) -> list[str]:
    """Flags as asr 0.1 spelled them (`--beam_size`, `--train.max_batch_seconds`) still work for this
    release: they are rewritten to kebab-case, with a note on stderr."""
    out = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--":  # what follows is not options
            break
        name, equals, value = arg.partition("=")
        if name.startswith("--") and "_" in name:
            out[i] = name.replace("_", "-") + equals + value
            say(f"note: {name} is deprecated and will stop working in the next release; "
                f"write {name.replace('_', '-')}")
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(modern_spelling(argv))
    try:
        code = args.func(args)
    except AsrError as err:
        say(f"error: {err}")
        code = 1
    except KeyboardInterrupt:
        say("interrupted")
        code = 130
    if args.func is cmd_train:
        from asr.distributed import Distributed, exit_without_finalizing

        if Distributed.from_env().enabled:  # one of several ranks: see exit_without_finalizing
            exit_without_finalizing(code)
    return code
