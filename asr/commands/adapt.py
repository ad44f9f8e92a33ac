"""`asr adapt`: fine-tune a model on one voice's recordings (asr.adapt), with a progress bar."""

from __future__ import annotations

from asr.commands import add_command, add_threads_flag, say


def add_commands(sub) -> None:
    from asr.config import add_flags
    from asr.configs import AdaptConfig

    p = add_command(sub, "adapt",
                    "fine-tune a model on one voice's recordings (a folder of audio + .txt, or a manifest)",
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
    add_flags(p, AdaptConfig)
    add_threads_flag(p)
    p.set_defaults(func=cmd_adapt)


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
