"""The `asr` command end to end: prepare, train, evaluate, transcribe, and clean errors."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
import yaml
from conftest import ONE_THREAD_ENV, SENTENCES
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from asr.audio import SAMPLE_RATE, load_audio
from asr.checkpoint import read_checkpoint
from asr.cli import build_parser, main
from asr.data.manifest import read_manifest
from asr.metrics import char_errors


def _one_error_line(stderr: str, *names: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for name in names:
        assert name in lines[0]
    return lines[0]


# --- prepare --------------------------------------------------------------------------------


def test_prepare_folder(speech_dir, tmp_path, capsys):
    out = tmp_path / "folder.jsonl"
    assert main(["prepare", "folder", str(speech_dir), str(out), "--jobs", "1"]) == 0
    assert f"wrote {out}: 6 utterances" in capsys.readouterr().out
    utterances = read_manifest(out)
    assert [(u.id, u.text) for u in utterances] == [(f"utt{i}", text) for i, text in enumerate(SENTENCES)]
    for u in utterances:
        assert u.duration == pytest.approx(sf.info(u.audio_path).duration, abs=1e-4)


def test_prepare_kaldi(speech_dir, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    shutil.copytree(speech_dir, corpus / "audio", ignore=shutil.ignore_patterns("*.txt"))
    data = corpus / "train"
    data.mkdir()
    ids = [f"spk{i % 2}-utt{i}" for i in range(len(SENTENCES))]
    (data / "wav.scp").write_text("".join(f"{u} audio/utt{i}.wav\n" for i, u in enumerate(ids)))
    (data / "text").write_text("".join(f"{u} {t.upper()}\n" for u, t in zip(ids, SENTENCES)))
    (data / "utt2spk").write_text("".join(f"{u} {u[:4]}\n" for u in ids))
    out = tmp_path / "kaldi.jsonl"
    assert main(["prepare", "kaldi", str(data), str(out), "--jobs", "1"]) == 0
    assert f"wrote {out}: 6 utterances" in capsys.readouterr().out
    got = {u.id: (u.text, u.speaker, Path(u.audio_path).name) for u in read_manifest(out)}
    assert got == {u: (t.upper(), u[:4], f"utt{i}.wav") for i, (u, t) in enumerate(zip(ids, SENTENCES))}


def test_prepare_errors_are_one_line(tmp_path, capsys):
    assert main(["prepare", "folder", str(tmp_path / "nowhere"), str(tmp_path / "x.jsonl")]) == 1
    _one_error_line(capsys.readouterr().err, "nowhere", "not a folder")
    assert not (tmp_path / "x.jsonl").exists()


def test_an_error_line_is_written_in_one_call(tmp_path, monkeypatch):
    """print() would write the text and the newline apart; two torchrun ranks then interleave."""
    writes = []
    monkeypatch.setattr(sys.stderr, "write", writes.append)
    assert main(["prepare", "folder", str(tmp_path / "nowhere"), str(tmp_path / "x.jsonl")]) == 1
    assert len(writes) == 1 and writes[0].startswith("error: ") and writes[0].endswith("not a folder\n"), writes


# --- train ----------------------------------------------------------------------------------


def _tiny_yaml(tmp_path: Path, manifest: Path, **sections) -> Path:
    config = {
        "train_manifest": str(manifest),
        "dev_manifest": str(manifest),
        "model": {"hidden_size": 24, "num_layers": 1},
        "train": {"epochs": 2, "max_batch_seconds": 6.0, "lr": 0.01, "num_workers": 0, "log_every": 1,
                  "device": "cpu"},
    }
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_writes_the_experiment_and_layers_its_config(speech_manifest, tmp_path, capsys):
    exp_dir = tmp_path / "exp"
    conf = _tiny_yaml(tmp_path, speech_manifest)
    assert main(["train", "--config", str(conf), "--exp-dir", str(exp_dir),
                 "--train.lr", "0.02", "--model.subsample", "2"]) == 0
    printed = capsys.readouterr().out
    assert "finished at step" in printed
    assert {"config.yaml", "last.pt", "best.pt", "metrics.jsonl", "curves.png"} <= {p.name for p in exp_dir.iterdir()}

    saved = yaml.safe_load((exp_dir / "config.yaml").read_text())
    assert saved["model"]["hidden_size"] == 24  # YAML over the default (256)
    assert saved["model"]["num_layers"] == 1
    assert saved["train"]["lr"] == 0.02  # flag over YAML (0.01)
    assert saved["model"]["subsample"] == 2  # flag over the default (3)
    assert saved["train"]["epochs"] == 2
    assert saved["train"]["warmup_steps"] == 300  # untouched default
    assert saved["features"]["n_mels"] == 80

    last, best = read_checkpoint(exp_dir / "last.pt"), read_checkpoint(exp_dir / "best.pt")
    assert last["model_config"]["hidden_size"] == 24 and last["model_config"]["subsample"] == 2
    assert "train_state" not in best
    records = [json.loads(line) for line in (exp_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == list(range(1, last["train_state"]["state"]["step"] + 1))
    dev = [r for r in records if "dev_wer" in r]
    assert len(dev) == 2  # one dev evaluation per epoch
    # stderr is no terminal here: a plain line per log window and per evaluation, no progress bar.
    assert [line.split()[1] for line in printed.splitlines() if " loss " in line] == [str(s) for s in steps]
    for r in dev:
        assert f"step {r['step']}  epoch {r['epoch']}  dev WER {r['dev_wer']:.2%}" in printed

    image = matplotlib.image.imread(exp_dir / "curves.png")
    assert image.shape == (900, 800, 4) and image[..., :3].std() > 0.05  # drawn, not blank
    events = EventAccumulator(str(exp_dir / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == steps
    assert [e.value for e in events.Scalars("dev/wer")] == pytest.approx([r["dev_wer"] for r in dev])


def test_plot_overlays_runs_and_reports_a_missing_folder(speech_manifest, tmp_path, capsys):
    run_dir = tmp_path / "exp"
    assert main(["train", "--config", str(_tiny_yaml(tmp_path, speech_manifest)), "--exp-dir", str(run_dir)]) == 0
    other = tmp_path / "other"  # a second run: the first one's log up to half way
    other.mkdir()
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    (other / "metrics.jsonl").write_text("".join(line + "\n" for line in lines[: len(lines) // 2]))
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    assert main(["plot", str(run_dir), "--out", str(one)]) == 0
    assert main(["plot", str(run_dir), str(other), "--out", str(two)]) == 0
    assert f"wrote {two} (2 run(s))" in capsys.readouterr().out
    single, double = matplotlib.image.imread(one), matplotlib.image.imread(two)
    assert single.shape == double.shape and not np.array_equal(single, double)  # a second line, a second label
    assert main(["plot", str(run_dir), str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.png")]) == 1
    _one_error_line(capsys.readouterr().err, "nowhere", "metrics.jsonl")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "flags, yaml_sections, parts",
    [
        ([], {"model": {"hiden_size": 3}}, ("unknown config field", "hiden_size", "known: n_mels")),
        (["--train.lr", "fast"], {}, ("train.lr must be float",)),
        (["--model.num-layers", "2.5"], {}, ("model.num_layers must be int",)),
        (["--train.threads", "0"], {}, ("train.threads must be at least 1, got 0",)),
        (["--train.threads", "-2"], {}, ("train.threads must be at least 1, got -2",)),
    ],
)
def test_bad_config_is_a_clean_error(speech_manifest, tmp_path, capsys, flags, yaml_sections, parts):
    conf = _tiny_yaml(tmp_path, speech_manifest, **yaml_sections)
    exp_dir = tmp_path / "exp"
    assert main(["train", "--config", str(conf), "--exp-dir", str(exp_dir), *flags]) == 1
    _one_error_line(capsys.readouterr().err, *parts)
    assert not exp_dir.exists()  # nothing written for a run that never started


def test_unknown_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--exp-dir", "x", "--model.hiden-size", "3"])
    assert info.value.code == 2
    assert "unrecognized arguments: --model.hiden-size" in capsys.readouterr().err


# --- evaluate -------------------------------------------------------------------------------


def test_evaluate_prints_and_writes_wer(tiny_checkpoint, speech_manifest, tmp_path, capsys):
    out_dir = tmp_path / "decode"
    assert main(["evaluate", "--model", str(tiny_checkpoint), "--manifest", str(speech_manifest),
                 "--out-dir", str(out_dir), "--jobs", "0"]) == 0
    printed = capsys.readouterr().out
    lines = (out_dir / "wer-summary-speech.json").read_text().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["set"] == "speech" and summary["utterances"] == 6
    assert summary["words"] == sum(len(s.split()) for s in SENTENCES)
    assert f"speech: WER {summary['wer']:.2%}  CER {summary['cer']:.2%}" in printed
    recogs = (out_dir / "recogs-speech.txt").read_text()
    for i, sentence in enumerate(SENTENCES):
        assert f"utt{i}\tref\t{sentence}\n" in recogs
        assert f"utt{i}\thyp\t" in recogs


@pytest.mark.parametrize("command", ["evaluate", "transcribe"])
def test_threads_below_one_is_a_clean_error(tiny_checkpoint, speech_manifest, capsys, command):
    inputs = ["--manifest", str(speech_manifest)] if command == "evaluate" else [str(speech_manifest)]
    assert main([command, "--model", str(tiny_checkpoint), *inputs, "--threads", "0"]) == 1
    _one_error_line(capsys.readouterr().err, "--threads must be at least 1, got 0")


@pytest.mark.slow
def test_evaluate_with_unreadable_audio_is_a_clean_error(overfit_exp, speech_manifest, tmp_path, capsys):
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    manifest = tmp_path / "with-broken.jsonl"
    rows = [json.loads(line) for line in speech_manifest.read_text().splitlines()]
    rows[2]["audio_path"] = str(broken)
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out_dir = tmp_path / "decode"
    assert main(["evaluate", "--model", str(overfit_exp / "last.pt"), "--manifest", str(manifest),
                 "--out-dir", str(out_dir), "--jobs", "1"]) == 1  # the error comes from a DataLoader worker
    _one_error_line(capsys.readouterr().err, str(broken), "not a readable audio file")
    assert json.loads((out_dir / "wer-summary-with-broken.json").read_text())["utterances"] == len(rows) - 1


# --- transcribe -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stereo_44k(speech_dir, tmp_path_factory) -> dict[Path, str]:
    """Three of the espeak sentences as 44.1 kHz stereo wav, flac and Ogg/Vorbis: {path: sentence}."""
    folder = tmp_path_factory.mktemp("stereo44k")
    files = {}
    for i, suffix in enumerate([".wav", ".flac", ".ogg"]):
        mono = torch.from_numpy(load_audio(speech_dir / f"utt{i}.wav"))
        left = AF.resample(mono, SAMPLE_RATE, 44100).numpy()
        path = folder / f"sentence{i}{suffix}"
        sf.write(path, np.stack([left, 0.5 * left], axis=1), 44100)  # unequal channels: downmix matters
        files[path] = SENTENCES[i]
    return files


def _transcribe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asr", "transcribe", *args], env=ONE_THREAD_ENV,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_transcribe_files_with_a_corrupt_one(overfit_exp, stereo_44k, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(100))
    good = list(stereo_44k)
    result = _transcribe(str(good[0]), str(broken), str(good[1]), str(good[2]),
                         "--model", str(overfit_exp / "last.pt"))
    assert result.returncode != 0
    _one_error_line(result.stderr, str(broken))
    lines = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(p) for p in good]
    # The model was overfit on these sentences at 16 kHz mono: it must still recognize them.
    errors = sum((char_errors(stereo_44k[p], line.split("\t")[1]) for p, line in zip(good, lines)),
                 start=char_errors("", ""))
    assert errors.rate < 0.1, result.stdout


@pytest.mark.slow
def test_transcribe_folder_as_jsonl(overfit_exp, stereo_44k):
    folder = next(iter(stereo_44k)).parent
    result = _transcribe(str(folder), "--format", "jsonl", "--model", str(overfit_exp / "last.pt"))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["file"] for row in rows] == sorted(str(p) for p in stereo_44k)
    assert all({"file", "text"} <= row.keys() and isinstance(row["text"], str) for row in rows)


def test_transcribe_missing_model_is_a_clean_error(tmp_path, stereo_44k, capsys):
    assert main(["transcribe", str(next(iter(stereo_44k))), "--model", str(tmp_path / "none.pt")]) == 1
    _one_error_line(capsys.readouterr().err, "none.pt", "not found")


def test_transcribe_with_a_folder_as_model_says_it_is_a_folder(tmp_path, stereo_44k, capsys):
    (tmp_path / "best.pt").write_bytes(b"")
    assert main(["transcribe", str(next(iter(stereo_44k))), "--model", str(tmp_path)]) == 1
    _one_error_line(capsys.readouterr().err, str(tmp_path), "is a directory", "best.pt")


# --- flags and help -------------------------------------------------------------------------


@pytest.mark.parametrize("flags, name", [
    (["--decoder", "beam", "--beam-size", "1000000000"], "beam_size"),
    (["--beam-size-token", "0"], "beam_size_token"),
    (["--lm-weight", "1e9"], "lm_weight"),
    (["--lm-weight", "nan"], "lm_weight"),
    (["--word-score=-1e6"], "word_score"),
    (["--beam-threshold", "1e9"], "beam_threshold"),
])
def test_out_of_range_decoding_options_are_one_error_line(tiny_checkpoint, speech_dir, capsys, flags, name):
    assert main(["transcribe", str(speech_dir / "utt0.wav"), "--model", str(tiny_checkpoint), *flags]) == 1
    _one_error_line(capsys.readouterr().err, name, "must be between")


def test_tune_checks_its_grid_before_running_the_model(tmp_path, capsys):
    args = ["tune", "--model", str(tmp_path / "not-needed.pt"), "--manifest", "m.jsonl", "--lm", "lm.arpa"]
    assert main([*args, "--lm-weights", "0,1,500"]) == 1
    _one_error_line(capsys.readouterr().err, "lm_weight", "500")
    assert main([*args, "--trials", "100000000"]) == 1
    _one_error_line(capsys.readouterr().err, "--trials")


def _subcommands(parser, path=()):
    """(command words, parser) for every parser under `parser`, itself included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _subcommands(child, (*path, name))


def test_every_usage_line_names_its_command_and_every_train_flag_is_described():
    commands = dict(_subcommands(build_parser()))
    assert ("lm", "build") in commands and ("prepare", "speechocean762") in commands
    for path, parser in commands.items():
        assert parser.format_usage().startswith(" ".join(["usage: asr", *path]) + " "), path
    train_flags = [a for a in commands[("train",)]._actions if a.option_strings and a.dest != "help"]
    assert len(train_flags) > 30
    for action in train_flags:
        description = (action.help or "").split("(default:")[0].strip()
        assert description, f"{action.option_strings[0]} has no description"


def test_help_shows_real_defaults_and_choices(capsys):
    with pytest.raises(SystemExit):
        main(["transcribe", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "--decoder {greedy,beam}" in text
    assert "(default: from the model, else greedy)" in text and "(default: from the model, else 2.0)" in text
    assert "'greedy'" not in text
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--train.max-batch-seconds FLOAT padded audio seconds per batch (default: 50.0)" in text
    assert "--model.hidden-size INT per direction (default: 256)" in text


def test_the_snake_case_spellings_of_0_1_are_gone(capsys):
    """Removed (CHANGELOG.md): argparse refuses them, naming the flag."""
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--exp-dir", "x", "--train.max_batch_seconds", "5"])
    assert exit_info.value.code == 2 and "--train.max_batch_seconds" in capsys.readouterr().err


HELP_PROBE = """
import sys
from asr.cli import build_parser, main
for argv in {commands!r}:
    try:
        main(argv)
    except SystemExit:
        pass
print("TORCH", "torch" in sys.modules, file=sys.stderr)
"""


@pytest.mark.slow
def test_help_of_every_command_does_not_import_torch():
    commands = [[*path, "--help"] for path, _ in _subcommands(build_parser())]
    result = subprocess.run([sys.executable, "-c", HELP_PROBE.format(commands=commands)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("usage: asr") == len(commands)
    assert result.stderr.strip().splitlines()[-1] == "TORCH False"
    # The probe can fail: the same run on a command that loads a model does import torch.
    loads_a_model = [["transcribe", "x.wav", "--model", "x.pt"]]
    result = subprocess.run([sys.executable, "-c", HELP_PROBE.format(commands=loads_a_model)],
                            capture_output=True, text=True, timeout=120)
    assert result.stderr.strip().splitlines()[-1] == "TORCH True"
