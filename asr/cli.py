"""The `asr` command: thin wrappers over the library.

    asr prepare kaldi|librispeech-dir|folder SRC OUT.jsonl   build a manifest
    asr synth --text-manifest TRAIN.jsonl --out-dir D --manifest OUT.jsonl --count N
    asr train --config conf.yaml --exp-dir EXP [--train.lr 1e-3 ...]
    asr evaluate --model CKPT --manifest M [--out-dir D]
    asr transcribe FILE_OR_FOLDER... [--model CKPT] [--format txt|jsonl]   (default model: bundled)
        [--output F [--resume]] [--jobs N]   append lines to F as files finish; skip those already there
    asr demo [--model CKPT]                   transcribe self-made sample speech, print WER
    asr export CKPT [--lm LM] [--decoding KEY=VALUE ...]   make CKPT the bundled model

Expected failures (bad audio, bad manifests, bad configs, missing checkpoints)
print one `error: ...` line and exit with status 1 or 2; no traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asr.audio import AudioError
from asr.checkpoint import CheckpointError
from asr.config import ConfigError
from asr.data.manifest import ManifestError
from asr.data.synthesize import SynthesisError
from asr.transcribe import OutputError

USER_ERRORS = (AudioError, CheckpointError, ConfigError, ManifestError, SynthesisError, OutputError,
               FileNotFoundError)


def cmd_prepare(args) -> int:
    from asr.data import importers
    from asr.data.manifest import write_manifest

    importer = {"kaldi": importers.import_kaldi_dir, "librispeech-dir": importers.import_librispeech,
                "folder": importers.import_folder}[args.layout]
    utterances = importer(args.source, jobs=args.jobs)
    write_manifest(utterances, args.manifest)
    hours = sum(u.duration for u in utterances) / 3600
    print(f"wrote {args.manifest}: {len(utterances)} utterances, {hours:.2f} h")
    return 0


def cmd_synth(args) -> int:
    from asr.data.manifest import read_manifest
    from asr.data.synthesize import synthesize_corpus

    texts = [u.text for path in args.text_manifest for u in read_manifest(path)]
    engines = args.engines.split(",") if args.engines else None
    utterances = synthesize_corpus(texts, args.out_dir, args.manifest, args.count, seed=args.seed,
                                   engines=engines, extra_fraction=args.extra_fraction, jobs=args.jobs)
    hours = sum(u.duration for u in utterances) / 3600
    speakers = len({u.speaker for u in utterances})
    print(f"wrote {args.manifest}: {len(utterances)} utterances, {hours:.2f} h, {speakers} voices")
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
    print(f"finished at step {trainer.state.step}; checkpoints in {args.exp_dir}")
    return 0


def cmd_evaluate(args) -> int:
    from asr.checkpoint import load_model
    from asr.data.manifest import read_manifest
    from asr.decode import DecodingOptions, make_decoder
    from asr.evaluate import evaluate

    loaded = load_model(args.model, args.device)
    utterances = read_manifest(args.manifest)
    name = Path(args.manifest).name.removesuffix(".jsonl")
    decoder = make_decoder(DecodingOptions(decoder=args.decoder), loaded.tokenizer)
    out_dir = args.out_dir or str(Path(args.model).parent / "decode")
    summary = evaluate(loaded, utterances, decoder, out_dir, name, device=args.device, num_workers=args.jobs)
    print(f"{name}: WER {summary['wer']:.2%}  CER {summary['cer']:.2%}  ({summary['utterances']} utterances, "
          f"{summary['words']} words); details in {out_dir}")
    return 0


def cmd_transcribe(args) -> int:
    from asr.checkpoint import load_model
    from asr.decode import DecodingOptions, make_decoder
    from asr.pretrained import default_model_path, stored_decoding
    from asr.transcribe import TranscribeOptions, expand_inputs, transcribe_many

    loaded = load_model(args.model or default_model_path())
    options = DecodingOptions(decoder=args.decoder) if args.decoder else stored_decoding(loaded)
    decoder = make_decoder(options, loaded.tokenizer)
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


def build_parser() -> argparse.ArgumentParser:
    from asr import __version__
    from asr.config import add_flags
    from asr.train import RunConfig

    parser = argparse.ArgumentParser(prog="asr", description="BiLSTM-CTC speech recognition toolkit")
    parser.add_argument("--version", action="version", version=f"asr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="build a JSONL manifest from a corpus on disk")
    p.add_argument("layout", choices=["kaldi", "librispeech-dir", "folder"])
    p.add_argument("source", help="Kaldi data dir, LibriSpeech subset folder, or folder of audio + .txt")
    p.add_argument("manifest", help="output manifest (.jsonl)")
    p.add_argument("--jobs", type=int, default=None, help="processes reading audio headers (default: all cores)")
    p.set_defaults(func=cmd_prepare)

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

    p = sub.add_parser("evaluate", help="decode a manifest and report WER/CER")
    p.add_argument("--model", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--out-dir", help="where recogs-*/wer-summary-* go (default: next to the model)")
    p.add_argument("--decoder", default="greedy")
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=1, help="DataLoader worker processes")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("transcribe", help="print the transcript of audio files or folders")
    p.add_argument("inputs", nargs="+", metavar="FILE_OR_FOLDER")
    p.add_argument("--model", help="checkpoint to use (default: the bundled model, asr/pretrained/)")
    p.add_argument("--format", choices=["txt", "jsonl"], default="txt")
    p.add_argument("--decoder", help="greedy or beam (default: the model's stored decoding options)")
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
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
