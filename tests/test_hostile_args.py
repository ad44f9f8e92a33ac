"""The guard: every `asr` subcommand, given hostile arguments and paths, fails with one `error:`
line and a non-zero exit, never a traceback (README: "Expected failures ... no traceback").

Two tables. CASES are the bad inputs found by hand (issue 24), each of which must fail. The
walk over the parser (`_leaf_commands`) gives every subcommand, and so every new one, the
generic cases: no arguments, an unknown flag, a non-number for each number flag, and each of
its file or folder options pointed at something hostile (a folder, a file, a path below a file,
a missing file, a non-UTF-8 file, ''). Those may fail or not (a folder is a fine --out-dir), but
must never leave a traceback. Commands run in-process (`asr.cli.main`) for speed; the ones that
would start a server or a download are given only cases that fail before that.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asr.cli import build_parser, main

# Commands that, given valid arguments, block (a server) or reach the network: only cases that fail first.
_NO_RUN = {"serve", "prepare librispeech", "prepare speechocean762", "prepare text", "lm download", "synth", "demo"}


def _leaf_commands() -> dict[str, argparse.ArgumentParser]:
    """Every runnable subcommand ("lm build", "train", ...) and its parser, from the real parser tree."""
    found = {}

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found[" ".join(path)] = parser
        for sub in subs:
            for name, child in sub.choices.items():
                walk(child, [*path, name])

    walk(build_parser(), [])
    return found


COMMANDS = _leaf_commands()


def _unwritable(root: Path) -> Path:
    """A folder below which nothing can be created: a read-only folder, or for root (whom permissions
    do not stop) sysfs, where even root may not create files."""
    if os.geteuid() != 0:
        folder = root / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    if not Path("/sys/kernel").is_dir():
        pytest.skip("running as root without sysfs: no folder that root cannot write to")
    return Path("/sys")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, tiny_checkpoint, speech_manifest, speech_dir) -> dict[str, str]:
    """Paths to substitute into the tables: {NAME} in an argument becomes hostile[NAME]."""
    root = tmp_path_factory.mktemp("hostile")
    file = root / "file.txt"
    file.write_text("not a folder\n")
    binary = root / "latin1.jsonl"
    binary.write_bytes('{"id": "caf\xe9"}\n'.encode("latin-1") + b"\xff\xfe\n")
    rows = [json.loads(line) for line in speech_manifest.read_text().splitlines()]
    manifests = {}
    for name, value in (("nan", math.nan), ("inf", math.inf)):
        manifests[name] = root / f"{name}.jsonl"
        manifests[name].write_text("".join(json.dumps({**r, "duration": value}) + "\n" for r in rows[:2]))
    yaml_file = root / "bad.yaml"
    yaml_file.write_text("train:\n  lr: [1\n  epochs: 2\n")
    loop = root / "loop.wav"
    loop.symlink_to(loop)
    mp3 = root / "noise.mp3"
    mp3.write_bytes(os.urandom(4096))
    text = root / "text.txt"
    text.write_text("the cat sat on the mat\na dog ran in the park\n" * 20)
    exp = root / "exp"
    exp.mkdir()
    (exp / "metrics.jsonl").write_text(json.dumps({"step": 1, "epoch": 0, "loss": 1.0, "lr": 1e-3}) + "\n")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "a.wav").symlink_to(sorted(speech_dir.glob("*.wav"))[0])
    (corpus / "a.txt").write_text("the cat sat on the mat\n")
    return {"FILE": str(file), "EXP": str(exp), "CORPUS": str(corpus), "RO": str(_unwritable(root) / "asr-out"),
            "DIR": str(root), "UNDER_FILE": str(file / "sub"), "MISSING": str(root / "missing"),
            "BINARY": str(binary), "NAN": str(manifests["nan"]), "INF": str(manifests["inf"]), "YAML": str(yaml_file),
            "LOOP": str(loop), "MP3": str(mp3), "TEXT": str(text), "CKPT": str(tiny_checkpoint),
            "MANIFEST": str(speech_manifest), "WAV": str(sorted(speech_dir.glob("*.wav"))[0]),
            "OUT": str(root / "out")}


_TRAIN = ["train", "--exp-dir", "{OUT}/exp", "--train-manifest", "{MANIFEST}", "--model.hidden-size", "8",
          "--model.num-layers", "1", "--train.num-workers", "0", "--train.device", "cpu", "--train.max-steps", "1"]
_EVAL = ["evaluate", "--model", "{CKPT}", "--manifest", "{MANIFEST}", "--jobs", "0", "--out-dir", "{OUT}/decode"]

# (arguments, words the error line must hold): each must fail with one error line.
CASES = [
    (["transcribe", "{WAV}", "--output-dir", "{FILE}"], "file.txt"),
    (["transcribe", "{WAV}", "--output-dir", "{UNDER_FILE}"], "file.txt"),
    (["transcribe", "{WAV}", "--output", "{DIR}", "--resume"], "folder"),
    (["transcribe", "{WAV}", "--output-dir", "{RO}"], "asr-out"),
    (["transcribe", "{WAV}", "--output", "{RO}.jsonl"], "asr-out"),
    ([*_EVAL[:-1], "{RO}"], "asr-out"),
    (["export", "{CKPT}", "--out-dir", "{RO}"], "asr-out"),
    ([*_TRAIN[:2], "{RO}", *_TRAIN[3:]], "asr-out"),
    (["plot", "{EXP}", "--out", "{RO}.png"], "asr-out"),
    (["prepare", "folder", "{CORPUS}", "{RO}.jsonl"], "asr-out"),
    (["lm", "build", "--text", "{TEXT}", "--order", "2", "--out", "{RO}"], "asr-out"),
    (["demo", "--audio-dir", "{RO}"], "asr-out"),
    (["transcribe", ""], "''"),
    (["transcribe", "{LOOP}"], "symbolic link"),
    (["transcribe", "{MP3}"], "noise.mp3"),
    ([*_EVAL[:-1], "{FILE}"], "file.txt"),
    ([*_EVAL[:-1], "{UNDER_FILE}"], "file.txt"),
    ([*_EVAL[:3], "--manifest", "{BINARY}"], "UTF-8"),
    ([*_EVAL[:3], "--manifest", "{NAN}"], "duration"),
    ([*_EVAL[:3], "--manifest", "{INF}"], "duration"),
    ([*_EVAL, "--device", "banana"], "banana"),
    ([*_EVAL, "--device", "cuda:7"], "cuda"),
    (["tune", "--model", "{CKPT}", "--manifest", "{MANIFEST}", "--lm", "{MISSING}", "--device", "banana"], "banana"),
    (["export", "{CKPT}", "--out-dir", "{FILE}"], "file.txt"),
    (["export", "{CKPT}", "--out-dir", ""], "--out-dir"),  # it replaced the bundled model
    ([*_TRAIN[:2], "", *_TRAIN[3:]], "''"),  # it trained into the current folder
    (["plot", "{EXP}", "--out", "{UNDER_FILE}/c.png"], "file.txt"),
    (["plot", "{EXP}", "--out", "{DIR}"], "folder"),
    (["prepare", "folder", "{CORPUS}", "{DIR}"], "folder"),
    (["prepare", "folder", "{CORPUS}", "{UNDER_FILE}/m.jsonl"], "file.txt"),
    (["lm", "build", "--text", "{TEXT}", "--order", "2", "--out", "{FILE}"], "file.txt"),
    (["lm", "build", "--text", "{TEXT}", "--order", "2", "--out", "{OUT}/lm0", "--vocab-size", "0"], "vocab-size"),
    (["lm", "build", "--text", "{TEXT}", "--order", "2", "--out", "{OUT}/lm3", "--vocab-size", "-3"], "vocab-size"),
    (["lm", "build", "--text", "{BINARY}", "--order", "2", "--out", "{OUT}/lmb"], "UTF-8"),
    (["average", "--exp-dir", "{DIR}", "--last", "0"], "--last"),
    (["average", "--exp-dir", "{DIR}", "--best", "-2"], "--best"),
    ([*_TRAIN[:2], "{FILE}", *_TRAIN[3:]], "file.txt"),
    ([*_TRAIN[:2], "{UNDER_FILE}", *_TRAIN[3:]], "file.txt"),
    ([*_TRAIN[:3], "--train-manifest", "{BINARY}", *_TRAIN[5:]], "UTF-8"),
    ([*_TRAIN[:3], "--train-manifest", "{NAN}", *_TRAIN[5:]], "duration"),
    ([*_TRAIN, "--train.device", "banana"], "banana"),
    ([*_TRAIN, "--train.device", "cuda:7"], "cuda"),
    ([*_TRAIN, "--train.lr", "-0.1"], "train.lr"),
    ([*_TRAIN, "--train.log-every", "0"], "train.log_every"),
    ([*_TRAIN, "--train.epochs", "-1"], "train.epochs"),
    ([*_TRAIN, "--train.max-batch-seconds", "nan"], "max_batch_seconds"),
    ([*_TRAIN, "--model.hidden-size", "0"], "hidden_size"),
    ([*_TRAIN, "--config", "{YAML}"], "bad.yaml"),
    (["demo", "--audio-dir", "{FILE}"], "file.txt"),
    (["serve", "--port", "70000"], "--port"),
    (["serve", "--max-upload-mb", "nan"], "--max-upload-mb"),
    (["serve", "--port", "0", "--model", "{MISSING}"], "missing"),
]


def _fill(args: list[str], paths: dict[str, str]) -> list[str]:
    return [a.format(**paths) for a in args]


@pytest.fixture(scope="module", autouse=True)
def _bundled_model_untouched():
    """No hostile case may write into the installed package (export --out-dir '' once replaced the model)."""
    from asr.pretrained import PRETRAINED_DIR

    def stamp() -> dict:
        return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(PRETRAINED_DIR).iterdir()}

    before = stamp()
    yield
    assert stamp() == before


@pytest.fixture(autouse=True)
def _in_a_temporary_folder(tmp_path, monkeypatch):
    """'' and relative paths land in a temporary folder, never in the checkout."""
    monkeypatch.chdir(tmp_path)


def _run(args: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of `asr ARGS` run in-process; any exception but SystemExit fails the test."""
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    return code, capsys.readouterr().err


def _one_error_line(code: int, err: str) -> str:
    lines = err.splitlines()
    errors = [i for i, line in enumerate(lines) if "error:" in line]
    assert code not in (0, None), err
    assert len(errors) == 1 and "Traceback" not in err, err
    assert errors[0] == len(lines) - 1, f"the error is not one line:\n{err}"  # nothing after it: no continuation
    return lines[errors[0]]


@pytest.mark.parametrize("args,words", CASES, ids=[" ".join(c[0][:4]) + f" [{c[1]}]" for c in CASES])
def test_each_hostile_case_is_one_error_line(args, words, hostile, capsys):
    code, err = _run(_fill(args, hostile), capsys)
    assert words in _one_error_line(code, err)


# Each command's required arguments, valid enough that a bad flag value is what fails.
_BASES = {
    "prepare kaldi": ["{MISSING}", "{OUT}/m.jsonl"], "prepare librispeech-dir": ["{MISSING}", "{OUT}/m.jsonl"],
    "prepare folder": ["{MISSING}", "{OUT}/m.jsonl"],
    "prepare librispeech": ["--subsets", "dev-clean", "--root", "{MISSING}"],
    "synth": ["--out-dir", "{OUT}/s", "--manifest", "{OUT}/s.jsonl", "--count", "1"], "train": _TRAIN[1:],
    "average": ["--exp-dir", "{DIR}", "--last", "1"], "plot": ["{EXP}"], "evaluate": _EVAL[1:],
    "transcribe": ["{WAV}"], "explain": ["{WAV}", "--out", "{OUT}/e.png"], "export": ["{CKPT}", "--out-dir", "{OUT}/x"],
    "lm build": ["--text", "{TEXT}", "--out", "{OUT}/lm"], "lm download": ["librispeech", "--out", "{OUT}/lmd"],
    "tune": ["--model", "{CKPT}", "--manifest", "{MANIFEST}", "--lm", "{MISSING}"],
    "prepare text": ["--text-dir", "{MISSING}"], "adapt": ["{MISSING}", "--out", "{OUT}/a.pt"],
}


def test_every_command_has_a_base_here():
    """A new command with required arguments needs its line in _BASES, so that it gets the generic cases."""
    needs = {name for name, parser in COMMANDS.items() if any(a.required for a in parser._actions)}
    assert needs <= set(_BASES), needs - set(_BASES)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_unknown_flags_and_non_numbers(command, hostile, capsys, tmp_path):
    parser = COMMANDS[command]
    paths = {**hostile, "OUT": str(tmp_path / "out")}
    base = _fill(_BASES.get(command, []), paths)
    cases = [[], ["--no-such-flag", "1"]] if command in _BASES else [["--no-such-flag", "1"]]
    for args in cases:
        code, err = _run([*command.split(), *args], capsys)
        _one_error_line(code, err)
    for action in parser._actions:
        if action.option_strings and (action.type in (int, float) or str(action.metavar) in ("INT", "FLOAT")):
            code, err = _run([*command.split(), *base, action.option_strings[0], "twelve"], capsys)
            assert "twelve" in _one_error_line(code, err), (action.option_strings, err)


_PATHS = ["{DIR}", "{FILE}", "{UNDER_FILE}/x", "{MISSING}", "{BINARY}", "{RO}", ""]
_PATH_OPTIONS = {  # command: (its valid arguments, options taking a file or folder)
    "transcribe": (["{WAV}"], ["--model", "--output", "--output-dir", "--lm", "--lexicon"]),
    "evaluate": (_EVAL[1:], ["--model", "--manifest", "--out-dir", "--report", "--lm", "--lexicon"]),
    "explain": (["{WAV}", "--model", "{CKPT}", "--out", "{OUT}/e.png"], ["--model", "--out", "--lm"]),
    "export": (["{CKPT}", "--out-dir", "{OUT}/export"], ["--out-dir", "--lm", "--lexicon"]),
    "average": (["--exp-dir", "{DIR}", "--last", "1"], ["--exp-dir", "--out"]),
    "plot": (["{EXP}"], ["--out"]),
    "train": (_TRAIN[1:], ["--exp-dir", "--train-manifest", "--dev-manifest", "--config", "--train.init-from"]),
}


@pytest.mark.parametrize("command", [pytest.param(c, marks=pytest.mark.slow) if c == "evaluate" else c
                                     for c in sorted(_PATH_OPTIONS)])  # evaluate: ~60 s (HTML reports)
def test_file_options_pointed_at_hostile_paths_never_leave_a_traceback(command, hostile, capsys, tmp_path):
    base, options = _PATH_OPTIONS[command]
    for option in options:
        for path in _PATHS:
            args = _fill([*command.split(), *base, option, path], {**hostile, "OUT": str(tmp_path / "out")})
            code, err = _run(args, capsys)
            if code:
                _one_error_line(code, err)


@pytest.mark.parametrize("args", [["serve", "--port", "-1"],
                                  ["prepare", "kaldi", "{MISSING}", "{OUT}/m.jsonl"]])
def test_as_a_process_it_is_one_error_line(args, hostile):
    """A few through a real process: the exit status and stderr a shell sees."""
    result = subprocess.run([sys.executable, "-m", "asr", *_fill(args, hostile)], capture_output=True, text=True,
                            timeout=120)
    _one_error_line(result.returncode, result.stderr)
