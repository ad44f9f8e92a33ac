"""The `asr` command: one parser assembled from the command groups in asr.commands.

    asr prepare kaldi|librispeech-dir|folder SRC OUT.jsonl   build a manifest
    asr prepare speechocean762 --root DIR | --corpus-dir DIR [--manifest-dir D] [--mirror URL]
    asr prepare librispeech --subsets S... --root DIR [--mirror URL]   download + one manifest per subset
    asr prepare text --root DIR [--mirror URL] [--dry-run] | --text-dir DIR   fetch or check the LM text
    asr synth --prompts TRAIN.jsonl [--prompts TEXT_DIR:0.5] --out-dir D --manifest OUT.jsonl --count N
    asr train --config conf.yaml --exp-dir EXP [--train.lr 1e-3 ...]   (several GPUs: torchrun ... -m asr train)
    asr average --exp-dir EXP --last N|--best N   average epoch checkpoints
    asr plot EXP_DIR... [--out FILE]          training curves of one or several runs in one PNG
    asr evaluate --model CKPT --manifest M [--out-dir D] [--decoder beam --lm LM --lexicon LEX ...]
        [--report report.html [--report-utterances N]]   one self-contained HTML page of the errors
    asr transcribe FILE_OR_FOLDER... [--model CKPT] [--format txt,jsonl,srt,vtt|all]   (default model: bundled)
        [--output F | --output-dir D] [--resume]   a line per file in F, or a file per input and format in D
    asr explain FILE [--model CKPT] --out FILE.png [--start S --end E]   picture of one file's decoding
    asr demo [--model CKPT]                   transcribe self-made sample speech, print WER
    asr export CKPT [--lm LM] [--decoding KEY=VALUE ...]   make CKPT the bundled model
    asr lm build --text CORPUS... --order N --out DIR [--unit word|char] [--vocab-size N]   n-gram LM + lexicon
    asr lm download librispeech --out DIR
    asr tune --model CKPT --manifest dev.jsonl --lm LM [--lexicon LEX]   best LM weights -> CKPT
    asr serve [--model CKPT] [--host 127.0.0.1] [--port 8000]   HTTP API (OpenAI-style) + a web page
    asr adapt DATA --out MODEL.pt [--model BASE] [--text FILE] [--steps N | --minutes M]   fine-tune on one voice

Expected failures (bad audio, bad manifests, bad configs, missing checkpoints) print one
`error: ...` line and exit with status 1 or 2; no traceback. Under torchrun, any failure of
one rank (a bug too) ends every rank at once, each with at most one line (asr.distributed). Flags are kebab-case
(`--beam-size`, `--train.max-batch-seconds`). Building the parser imports no torch, so every
`--help` is instant; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from asr.commands import HelpFormatter, adapt, data, decoding, deploy, lm, rank_failed, say, training
from asr.errors import AsrError


def build_parser() -> argparse.ArgumentParser:
    """The `asr` command line. Imports nothing heavy (no torch): `--help` must be instant."""
    from asr import __version__

    parser = argparse.ArgumentParser(prog="asr", description="BiLSTM-CTC speech recognition toolkit",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"asr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (data, training, decoding, lm, adapt, deploy):
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command `argv` (default: the process's arguments); returns its exit status."""
    return _execute(build_parser().parse_args(sys.argv[1:] if argv is None else argv))


def run() -> NoReturn:
    """The `asr` command (and `python -m asr`): the command, then the exit. A command marked
    `quick_exit` (transcribe: its outputs written and closed, its threads joined) leaves without
    Python's interpreter finalization, which costs about half a second once torch is loaded
    (benchmarks/README.md, "transcribe.py again")."""
    args = build_parser().parse_args()
    code = _execute(args)
    if getattr(args, "quick_exit", False):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _execute(args: argparse.Namespace) -> int:
    try:
        code = args.func(args)
    except AsrError as err:
        say(f"error: {err}")
        code = 1
    except KeyboardInterrupt:
        say("interrupted")
        code = 130
    except Exception as err:  # a bug: its traceback, as Python prints it, except on a torchrun rank
        if not (getattr(args, "finish", None) and rank_failed(err)):
            raise
        code = 1
    if getattr(args, "finish", None):  # a torchrun rank (train, transcribe, evaluate): asr.distributed.exit_rank
        args.finish(code)
    return code
