"""The `asr` subcommands, one module per command group, each parser next to its handler.

    data.py      asr prepare ..., asr synth
    training.py  asr train, asr average, asr plot
    decoding.py  asr evaluate, asr transcribe, asr demo
    lm.py        asr lm build, asr lm download, asr tune
    deploy.py    asr serve, asr export

Each module has `add_commands(subparsers)`, which adds its parsers and sets `func` (the
handler, called with the parsed arguments, returning the exit status). asr.cli assembles
them. Handlers are thin: they turn flags into a library call, and the library checks what
it is given. Building a parser imports no torch, so every `--help` is instant; each handler
imports what it needs when it runs. This module holds what the groups share.
"""

from __future__ import annotations

import argparse
import sys


def say(line: str) -> None:
    """Write one line to stderr in a single call. print() writes the text and its newline
    separately when stderr is unbuffered (PYTHONUNBUFFERED), and then the lines of several
    torchrun ranks interleave."""
    sys.stderr.write(line + "\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's help ends with its default, unless there is none to show (None, False, a
    flag whose default is decided later) or the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("(default:" in text or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


def add_command(subparsers, name: str, summary: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand parser whose one-line summary is also its --help description."""
    return subparsers.add_parser(name, help=summary, description=summary, formatter_class=HelpFormatter, **kwargs)


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, help="torch threads for the model (default: half the cores; "
                                                     "1 when other jobs share the machine)")


def import_torch() -> None:
    """Import torch with Ctrl-C held back (asr.extras.import_whole): the long commands (`asr train`,
    `transcribe`, `evaluate`) call this first; the seconds it takes are when a Ctrl-C is likeliest."""
    from asr.extras import import_whole

    import_whole("torch")


def leave_rank(code: int) -> None:
    """After a command that torchrun may run as one of several ranks (`asr train`, `transcribe`,
    `evaluate`), whatever its outcome: such a rank leaves at once (asr.distributed.exit_rank).
    Nothing is imported here: a command that never got asr.distributed (and torch) loaded has no
    process group to leave, and when a Ctrl-C cut torch's import short, importing it again
    crashes (torch._C set up twice: SIGSEGV, SIGABRT; tests/test_train.py)."""
    distributed = sys.modules.get("asr.distributed")
    if distributed is not None:
        distributed.exit_rank(code)


def rank_failed(err: Exception) -> bool:
    """After `err` escaped a command that torchrun may run as one of several ranks: such a rank
    reports it (asr.distributed.report_failure) and returns True, to leave through `leave_rank`
    at once, so that no rank waits for it; in one process it returns False (the traceback as usual)."""
    distributed = sys.modules.get("asr.distributed")  # not loaded: no process group (see leave_rank)
    if distributed is None or not distributed.Distributed.from_env().enabled:
        return False
    distributed.report_failure(err)
    return True


def add_precision_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16", "int8"),
                        help="what the network computes in; auto: bfloat16 on a CPU with BF16 instructions "
                             "(same accuracy, faster: benchmarks/inference_precision.py), else float32; int8: "
                             "quantized weights (faster on a CPU, more transcripts change)")


def amount(utterances) -> str:
    """'N utterances, H.HH h' for the summary line of a written manifest."""
    return f"{len(utterances)} utterances, {sum(u.duration for u in utterances) / 3600:.2f} h"


def decoding_options(args, loaded):
    """The model's decoding options with the decoding flags given on top (asr.decode.override_decoding)."""
    from asr.config import flag_overrides
    from asr.decode import DecodingOptions, override_decoding

    return override_decoding(loaded.decoding, flag_overrides(args, DecodingOptions))
