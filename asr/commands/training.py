"""`asr train` (one process, or one rank under torchrun), `asr average` and `asr plot`."""

from __future__ import annotations

from asr.commands import add_command, import_torch, leave_rank


def add_commands(sub) -> None:
    from asr.config import add_flags
    from asr.configs import RunConfig

    p = add_command(sub, "train", "train a model (resumes automatically from EXP/last.pt)",
                    epilog="Every config field is a flag: --SECTION.FIELD overrides the YAML, which overrides the "
                           "defaults shown. Tuples and lists take YAML: --train.speeds '[0.9, 1.0, 1.1]'.")
    p.add_argument("--config", help="recipe YAML overriding the defaults")
    p.add_argument("--exp-dir", required=True, help="folder for checkpoints, logs and the resolved config")
    add_flags(p, RunConfig)
    p.set_defaults(func=cmd_train, finish=leave_rank)

    p = add_command(sub, "average", "average the weights of the last N or best N epoch checkpoints")
    p.add_argument("--exp-dir", required=True, help="training folder (trained with --train.keep-last K)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--last", type=int, metavar="N", help="the N newest epoch-*.pt")
    which.add_argument("--best", type=int, metavar="N", help="the N with the lowest dev WER")
    p.add_argument("--out", help="output checkpoint (default: EXP/avg-last-N.pt or EXP/avg-best-N.pt)")
    p.set_defaults(func=cmd_average)

    p = add_command(sub, "plot", "draw the training curves (loss, lr, dev WER/CER) of one or several runs")
    p.add_argument("exp_dirs", nargs="+", metavar="EXP_DIR", help="training folders (each with metrics.jsonl)")
    p.add_argument("--out", default="curves.png", help="PNG to write")
    p.set_defaults(func=cmd_plot)


def cmd_train(args) -> int:
    import_torch()
    from asr.config import flag_overrides, load_yaml, merge
    from asr.train import RunConfig, run

    config = RunConfig()
    if args.config:
        config = merge(config, load_yaml(args.config))
    config = merge(config, flag_overrides(args, RunConfig))
    result = run(config, args.exp_dir)
    if result.stop_signal is not None:  # saved and said so; shells expect 128 + signal number
        return 128 + result.stop_signal
    if result.is_main:  # under torchrun, one line rather than one per process
        print(f"finished at step {result.state.step}; checkpoints in {args.exp_dir}")
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
