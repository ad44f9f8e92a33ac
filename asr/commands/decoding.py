"""`asr evaluate`, `asr transcribe`, `asr tune`, `asr demo` and `asr export`: commands that run a model."""

from __future__ import annotations

from pathlib import Path

from asr.commands import add_command, add_threads_flag, decoding_options, say
from asr.config import ConfigError

# Default search grid of `asr tune`.
LM_WEIGHTS = "0,0.25,0.5,1,1.5,2"
WORD_SCORES = "-2,-1,0,1,2"


def add_commands(sub) -> None:
    from asr.config import add_flags
    from asr.configs import DecodingOptions, TranscribeOptions
    from asr.vad import SegmentOptions

    p = add_command(sub, "evaluate", "decode a manifest and report WER/CER")
    p.add_argument("--model", required=True, help="checkpoint file")
    p.add_argument("--manifest", required=True, help="JSONL manifest with reference transcripts")
    p.add_argument("--out-dir", help="where recogs-*/wer-summary-* go (default: MODEL's folder/decode)")
    add_flags(p, DecodingOptions, default_note="from the model")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--jobs", type=int, default=1, help="DataLoader worker processes")
    add_threads_flag(p)
    p.set_defaults(func=cmd_evaluate)

    p = add_command(sub, "transcribe", "print or write the transcripts of audio files or folders (any length)")
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
    add_flags(p, DecodingOptions, default_note="from the model")
    add_flags(p, SegmentOptions)
    add_flags(p, TranscribeOptions, only=("batch_segments", "jobs"))
    add_threads_flag(p)
    p.set_defaults(func=cmd_transcribe)

    p = add_command(sub, "demo", "transcribe sentences synthesized with espeak-ng and print the WER")
    p.add_argument("--model", help="checkpoint to use (default: the bundled model)")
    p.add_argument("--audio-dir", help="keep the synthesized wav files here (default: a temporary folder)")
    p.set_defaults(func=cmd_demo)
    _add_tune(sub)
    _add_export(sub)


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
    p.set_defaults(func=cmd_tune)


def _add_export(sub) -> None:
    p = add_command(sub, "export", "copy a checkpoint (no train_state) + LM into the bundled model folder")
    p.add_argument("checkpoint", help="checkpoint file")
    p.add_argument("--out-dir", help="destination folder (default: asr/pretrained/ of this installation)")
    p.add_argument("--lm", help="KenLM file for beam decoding, copied next to the model")
    p.add_argument("--lexicon", help="lexicon file for beam decoding, copied next to the model")
    p.add_argument("--decoding", nargs="*", default=[], metavar="KEY=VALUE",
                   help="default decoding options to store, e.g. decoder=beam lm_weight=1.5")
    p.set_defaults(func=cmd_export)


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
    from asr.transcribe import expand_inputs
    from asr.writers import check_outputs, parse_formats

    formats = parse_formats(args.format)
    paths, empty = expand_inputs(args.inputs)
    for folder in empty:
        say(f"warning: {folder}: no audio files in this folder")
    if not paths:
        raise AudioError(" ".join(args.inputs), "no audio files found")
    check_outputs(formats, len(paths), args.output, args.output_dir, args.resume)  # before the model loads

    from asr.checkpoint import load_model
    from asr.config import flag_overrides, merge
    from asr.decode import make_decoder
    from asr.pretrained import default_model_path
    from asr.threads import set_threads
    from asr.transcribe import TranscribeOptions, output_names, transcribe_many
    from asr.vad import SegmentOptions

    names = output_names(paths, args.inputs) if args.output_dir else None
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


def cmd_tune(args) -> int:
    from asr.checkpoint import load_model
    from asr.config import flag_overrides
    from asr.data.manifest import read_manifest
    from asr.decode import DecodingOptions, override_decoding
    from asr.tune import candidates, compute_emissions, save_decoding, tune

    # Not the model's stored options: the LM and beam flags given (--lm is required), on the defaults.
    base = override_decoding(DecodingOptions(), flag_overrides(args, DecodingOptions))
    pairs = candidates(_floats(args.lm_weights), _floats(args.word_scores), args.trials, args.seed)
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
