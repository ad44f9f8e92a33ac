"""`asr evaluate`, `asr transcribe`, `asr explain` and `asr demo`: commands that decode audio with a model.

`asr evaluate` and `asr transcribe` also run as torchrun's ranks (`torchrun --nproc-per-node N -m asr
transcribe ...`): each then does its share (asr.shard) and leaves through `leave_rank`."""

from __future__ import annotations

import functools
from pathlib import Path

from asr.commands import (
    add_command,
    add_precision_flag,
    add_threads_flag,
    decoding_options,
    import_torch,
    leave_rank,
    say,
)

GPU_BATCH_SECONDS = 600.0  # --batch-seconds with --device cuda when not given: see asr.transcribe


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
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (under torchrun cuda is each rank's GPU)")
    p.add_argument("--jobs", type=int, default=1, help="DataLoader worker processes")
    add_threads_flag(p)
    add_precision_flag(p)
    p.set_defaults(func=cmd_evaluate, finish=leave_rank)

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
    add_flags(p, TranscribeOptions, only=("batch_segments", "batch_seconds", "jobs"))
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (under torchrun cuda is each rank's GPU)")
    add_threads_flag(p)
    add_precision_flag(p)
    p.set_defaults(func=cmd_transcribe, finish=leave_rank, quick_exit=True)

    p = add_command(sub, "explain", "draw one file's decoding: log-mel, per-frame posteriors, greedy path, timed words")
    p.add_argument("file", help="audio file")
    p.add_argument("--model", help="checkpoint to use (default: the bundled model)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--start", type=float, help="seconds: draw from here (default: the file's start)")
    p.add_argument("--end", type=float, help="seconds: draw up to here (default: the file's end; at most 60 s)")
    add_flags(p, DecodingOptions, default_note="from the model")
    add_threads_flag(p)
    add_precision_flag(p)
    p.set_defaults(func=cmd_explain)

    p = add_command(sub, "demo", "transcribe sentences synthesized with espeak-ng and print the WER")
    p.add_argument("--model", help="checkpoint to use (default: the bundled model)")
    p.add_argument("--audio-dir", help="keep the synthesized wav files here (default: a temporary folder)")
    p.set_defaults(func=cmd_demo)


def cmd_evaluate(args) -> int:
    import_torch()
    from asr.checkpoint import load_model
    from asr.data.manifest import read_manifest
    from asr.decode import make_decoder
    from asr.distributed import Distributed
    from asr.evaluate import evaluate
    from asr.explain import describe
    from asr.shard import evaluate_sharded, rank_device, rank_threads
    from asr.threads import set_threads

    ranks = Distributed.from_env()
    set_threads(rank_threads(args.threads) if ranks.enabled else args.threads)
    device = rank_device(args.device, ranks)
    loaded = load_model(args.model, device, args.precision)
    utterances = read_manifest(args.manifest)
    name = Path(args.manifest).name.removesuffix(".jsonl")
    options = decoding_options(args, loaded)
    decoder = make_decoder(options, loaded.tokenizer)
    # Beside the manifest, never beside the model: the bundled model lives inside the installed package.
    out_dir = args.out_dir or str(Path(args.manifest).parent / f"decode-{Path(args.model).stem}")
    report_options = dict(report=args.report, report_utterances=args.report_utterances, decoding=describe(options))
    if ranks.enabled:
        summary = evaluate_sharded(loaded, utterances, decoder, out_dir, name, ranks, device=device,
                                   num_workers=args.jobs, **report_options)
        if summary is None:  # not rank 0: it prints the one summary line
            return 0
    else:
        summary = evaluate(loaded, utterances, decoder, out_dir, name, device=device, num_workers=args.jobs,
                           **report_options)
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
    loaded = load_model(args.model or default_model_path(), precision=args.precision)
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
    import_torch()
    from asr.checkpoint import load_model
    from asr.config import flag_overrides, merge
    from asr.decode import make_decoder
    from asr.distributed import Distributed
    from asr.pretrained import default_model_path
    from asr.shard import has_parts, rank_device, rank_threads, transcribe_sharded
    from asr.threads import set_threads
    from asr.transcribe import TranscribeOptions, output_names, transcribe_many
    from asr.vad import SegmentOptions

    ranks = Distributed.from_env()
    names = output_names(paths, args.inputs) if args.output_dir else None
    set_threads(rank_threads(args.threads) if ranks.enabled else args.threads)
    device = rank_device(args.device, ranks)
    overrides = flag_overrides(args, TranscribeOptions)
    if device.startswith("cuda"):  # keep the GPU busy: length-sorted batches across files
        overrides.setdefault("batch_seconds", GPU_BATCH_SECONDS)
    options = merge(TranscribeOptions(), {**overrides, "segments": flag_overrides(args, SegmentOptions)})
    loaded = load_model(args.model or default_model_path(), device, args.precision)
    decoder = make_decoder(decoding_options(args, loaded), loaded.tokenizer)
    sharded = ranks.enabled or (args.output and has_parts(args.output))
    run = functools.partial(transcribe_sharded, ranks=ranks) if sharded else transcribe_many
    failures = run(loaded, paths, decoder, formats, options=options, output=args.output,
                   output_dir=args.output_dir, names=names, resume=args.resume)
    return 1 if failures else 0


def cmd_demo(args) -> int:
    from asr.demo import run_demo

    run_demo(args.model, args.audio_dir)
    return 0
