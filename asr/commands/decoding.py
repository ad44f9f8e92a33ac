"""`asr evaluate`, `asr transcribe`, `asr explain` and `asr demo`: commands that decode audio with a model."""

from __future__ import annotations

from pathlib import Path

from asr.commands import add_command, add_threads_flag, decoding_options, say


def add_commands(sub) -> None:
    from asr.config import add_flags
    from asr.configs import DecodingOptions, TranscribeOptions
    from asr.vad import SegmentOptions

    p = add_command(sub, "evaluate", "decode a manifest and report WER/CER")
    p.add_argument("--model", required=True, help="checkpoint file")
    p.add_argument("--manifest", required=True, help="JSONL manifest with reference transcripts")
    p.add_argument("--out-dir", help="where recogs-*/wer-summary-* go (default: decode-MODEL beside the manifest)")
    p.add_argument("--report", metavar="FILE.html", help="also write one self-contained HTML page: tables, "
                                                          "confusions, the worst utterances with audio and pictures")
    p.add_argument("--report-utterances", type=int, default=20, metavar="N", help="worst utterances the page shows")
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

    p = add_command(sub, "explain", "draw one file's decoding: log-mel, per-frame posteriors, greedy path, timed words")
    p.add_argument("file", help="audio file")
    p.add_argument("--model", help="checkpoint to use (default: the bundled model)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--start", type=float, help="seconds: draw from here (default: the file's start)")
    p.add_argument("--end", type=float, help="seconds: draw up to here (default: the file's end; at most 60 s)")
    add_flags(p, DecodingOptions, default_note="from the model")
    add_threads_flag(p)
    p.set_defaults(func=cmd_explain)

    p = add_command(sub, "demo", "transcribe sentences synthesized with espeak-ng and print the WER")
    p.add_argument("--model", help="checkpoint to use (default: the bundled model)")
    p.add_argument("--audio-dir", help="keep the synthesized wav files here (default: a temporary folder)")
    p.set_defaults(func=cmd_demo)


def cmd_evaluate(args) -> int:
    from asr.checkpoint import load_model
    from asr.data.manifest import read_manifest
    from asr.decode import make_decoder
    from asr.evaluate import evaluate
    from asr.explain import describe
    from asr.threads import set_threads

    set_threads(args.threads)
    loaded = load_model(args.model, args.device)
    utterances = read_manifest(args.manifest)
    name = Path(args.manifest).name.removesuffix(".jsonl")
    options = decoding_options(args, loaded)
    decoder = make_decoder(options, loaded.tokenizer)
    # Beside the manifest, never beside the model: the bundled model lives inside the installed package.
    out_dir = args.out_dir or str(Path(args.manifest).parent / f"decode-{Path(args.model).stem}")
    summary = evaluate(loaded, utterances, decoder, out_dir, name, device=args.device, num_workers=args.jobs,
                       report=args.report, report_utterances=args.report_utterances, decoding=describe(options))
    for error in summary["skipped"]:
        say(f"error: {error}")
    report = f"; report {args.report}" if args.report else ""
    skipped = f", {len(summary['skipped'])} skipped (unreadable audio, above)" if summary["skipped"] else ""
    print(f"{name}: WER {summary['wer']:.2%}  CER {summary['cer']:.2%}  ({summary['utterances']} utterances, "
          f"{summary['words']} words{skipped}); details in {out_dir}{report}")
    return 1 if summary["skipped"] else 0


def cmd_explain(args) -> int:
    from asr.checkpoint import load_model
    from asr.decode import make_decoder
    from asr.explain import describe, draw, explain_file
    from asr.pretrained import default_model_path
    from asr.threads import set_threads

    set_threads(args.threads)
    loaded = load_model(args.model or default_model_path())
    options = decoding_options(args, loaded)
    explanation = explain_file(loaded, args.file, make_decoder(options, loaded.tokenizer), describe(options),
                               args.start, args.end)
    end = explanation.start + explanation.seconds
    draw(explanation, args.out, title=f"{Path(args.file).name}, {explanation.start:.2f}-{end:.2f} s: "
                                      f"{Path(loaded.path).name}")
    final = explanation.final or explanation.greedy
    print(f"wrote {args.out} ({explanation.start:.2f}-{end:.2f} s, {explanation.decoding}): {final.text}")
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
