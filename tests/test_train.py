"""asr.train: the LR schedule, a CPU overfit run that must reach near-zero error, exact resume
(after a kill or a stop signal), and what a run logs (log-file lines, window means, no stale lines)."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ONE_THREAD_ENV, signal_after

from asr.checkpoint import CheckpointError, load_model, read_checkpoint
from asr.checkpointer import Checkpointer, load_initial_weights
from asr.cli import main
from asr.config import ConfigError, to_dict
from asr.data.manifest import read_manifest, read_mix
from asr.decode import GreedyDecoder
from asr.evaluate import decode_utterances, score
from asr.features import FeatureConfig
from asr.model import CTCModel, ModelConfig
from asr.text import CharTokenizer
from asr.train import RunConfig, TrainConfig, get_lr, resolve, run


def test_get_lr_warms_up_linearly_then_follows_a_cosine():
    config = TrainConfig(lr=1e-3, warmup_steps=10, final_lr_ratio=0.1)
    frozen = dataclasses.replace(config)
    total, floor = 110, 1e-4
    lrs = [get_lr(step, config, total) for step in range(200)]
    assert lrs[:10] == pytest.approx([1e-3 * (s + 1) / 10 for s in range(10)])
    assert lrs[10] == pytest.approx(1e-3)  # peak where the cosine starts
    assert lrs[60] == pytest.approx((1e-3 + floor) / 2)  # half way down
    assert lrs[35] == pytest.approx(floor + (1e-3 - floor) * (1 + math.cos(math.pi / 4)) / 2)
    assert lrs[110:] == pytest.approx([floor] * 90)  # stays at the floor past the end
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    # Pure: same answer on every call, and the config is left alone.
    assert [get_lr(step, config, total) for step in range(200)] == lrs
    assert config == frozen


def test_get_lr_without_warmup_starts_at_the_peak():
    config = TrainConfig(lr=2e-3, warmup_steps=0, final_lr_ratio=0.0)
    assert get_lr(0, config, 100) == pytest.approx(2e-3)
    assert get_lr(100, config, 100) == pytest.approx(0.0)


def _metrics(exp_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (exp_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow  # 200 training steps: ~25 s on 2 busy cores, minutes when niced under a training run
def test_tiny_model_overfits_six_sentences(overfit_exp, speech_manifest):
    """Trained by the `overfit_exp` fixture through asr.train.run: greedy CER < 5% on its training set."""
    loaded = load_model(overfit_exp / "last.pt")
    utterances = read_manifest(speech_manifest)
    hyps = decode_utterances(loaded, utterances, GreedyDecoder(loaded.tokenizer), num_workers=0)
    summary, rows = score(utterances, hyps)
    report = "\n".join(f"{row['ref']!r} -> {row['hyp']!r}" for row in rows)
    assert summary["cer"] < 0.05, report
    losses = [record["loss"] for record in _metrics(overfit_exp) if "loss" in record]
    assert len(losses) >= 20
    assert losses[-1] < losses[0] / 20, losses
    assert max(losses[-5:]) < min(losses[:5])


# --- kill and resume -------------------------------------------------------------------------

RESUME_STEPS_BEFORE_KILL = 4  # last.pt's step when the killed run dies (checkpoint_every 4)


@pytest.fixture(scope="module")
def resume_config(speech_manifest, tmp_path_factory) -> Path:
    """A run with every source of randomness on (dropout, SpecAugment, speed perturbation, audio
    augmentations, joined utterances, shuffled batches), three batches an epoch, a checkpoint every
    fourth step and at epoch ends."""
    config = {
        "train_manifest": str(speech_manifest),
        "model": {"hidden_size": 32, "num_layers": 2, "dropout": 0.2},
        "specaug": {"freq_masks": 2, "time_masks": 2},
        "augment": {"noise_prob": 0.5, "reverb_prob": 0.5, "rir_count": 3, "telephone_prob": 0.3,
                    "codec_prob": 0.3, "gain_prob": 0.5, "join_prob": 0.3},
        "train": {"epochs": 12, "max_batch_seconds": 4.0, "lr": 3e-3, "warmup_steps": 5, "seed": 3,
                  "speeds": [0.9, 1.0, 1.1], "log_every": 1, "checkpoint_every": 4, "device": "cpu"},
    }
    path = tmp_path_factory.mktemp("resume") / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def uninterrupted_exp(resume_config, tmp_path_factory) -> Path:
    exp_dir = tmp_path_factory.mktemp("uninterrupted")
    assert main(["train", "--config", str(resume_config), "--exp-dir", str(exp_dir),
                 "--train.num-workers", "0"]) == 0
    return exp_dir


def _saved_step(last: Path) -> int:
    try:
        return read_checkpoint(last)["train_state"]["state"]["step"]
    except CheckpointError:
        return -1  # not written yet


def _logged_step(exp_dir: Path) -> int:
    path = exp_dir / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1])["step"] if lines and lines[-1].endswith("}") else -1  # last line may be partial


def _logged_steps(exp_dir: Path) -> dict[int, int]:
    """{step: epoch} of the complete loss lines of metrics.jsonl so far."""
    path = exp_dir / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    records = [json.loads(line) for line in lines if line.endswith("}")]  # the last line may be partial
    return {r["step"]: r["epoch"] for r in records if "loss" in r}


def _comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("audio_sec_per_sec", "elapsed_s", "cpu_s")}
            for r in records]  # timings


LOG_WINDOW = "asr.metrics_logger:MetricsLogger.log_window"  # called once per logged window, on every rank


def _signalled_run(calls: int, signal_name: str, whom: str, args: list[str]) -> subprocess.CompletedProcess:
    """`asr ARGS` (a training run) that signals itself or its process group right after its
    `calls`-th log window (with log_every 1: step `calls`)."""
    return subprocess.run(signal_after(LOG_WINDOW, calls, signal_name, whom, args), env=ONE_THREAD_ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                          timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("num_workers", [0, 1])
def test_killed_run_resumes_to_the_same_weights(resume_config, uninterrupted_exp, tmp_path, num_workers):
    exp_dir = tmp_path / "exp"
    args = ["train", "--config", str(resume_config), "--exp-dir", str(exp_dir), "--train.num-workers", str(num_workers)]
    total_steps = read_checkpoint(uninterrupted_exp / "last.pt")["train_state"]["state"]["step"]

    # SIGKILL (with the DataLoader worker) right after step 5 is logged: last.pt holds step 4
    # (checkpoint_every 4), so the resume must drop step 5's line and do that step again.
    killed = _signalled_run(RESUME_STEPS_BEFORE_KILL + 1, "SIGKILL", "group", args)
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:]
    killed_at = _saved_step(exp_dir / "last.pt")
    assert killed_at == RESUME_STEPS_BEFORE_KILL and _logged_step(exp_dir) == killed_at + 1 < total_steps

    command = [sys.executable, "-m", "asr", *args]
    resumed = subprocess.run(command, env=ONE_THREAD_ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed from {exp_dir / 'last.pt'} at step {killed_at}" in resumed.stdout + resumed.stderr

    final, reference = read_checkpoint(exp_dir / "last.pt"), read_checkpoint(uninterrupted_exp / "last.pt")
    assert final["train_state"]["state"] == reference["train_state"]["state"]
    assert final["model_state_dict"].keys() == reference["model_state_dict"].keys()
    for name, tensor in reference["model_state_dict"].items():
        assert torch.equal(final["model_state_dict"][name], tensor), name
    optimizer, reference_optimizer = final["train_state"]["optimizer"], reference["train_state"]["optimizer"]
    for param, state in reference_optimizer["state"].items():
        for key, value in state.items():
            assert torch.equal(optimizer["state"][param][key], value), (param, key)

    records = _metrics(exp_dir)
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == sorted(set(steps)), "duplicated or missing steps after the resume"
    assert _comparable(records) == _comparable(_metrics(uninterrupted_exp))


@pytest.mark.slow
@pytest.mark.parametrize("stop,to_group", [("SIGINT", True), ("SIGTERM", False), ("SIGTERM", True)])
def test_stop_signal_saves_last_pt_and_the_resume_ends_like_an_uninterrupted_run(resume_config, uninterrupted_exp,
                                                                                 tmp_path, stop, to_group):
    """Ctrl-C (SIGINT to the whole process group, DataLoader worker included), SIGTERM to the
    trainer alone, or SIGTERM to its whole group (pkill, a job scheduler) between checkpoints:
    last.pt is written at the next step boundary, the command exits with 128 + the signal
    number, and the resume ends with the uninterrupted run's weights."""
    signum = getattr(signal, stop)
    exp_dir = tmp_path / "exp"
    args = ["train", "--config", str(resume_config), "--exp-dir", str(exp_dir),
            "--train.num-workers", "1" if to_group else "0",
            "--train.checkpoint-every", "1000"]  # no periodic last.pt: only the signal writes one mid-epoch
    # The signal comes just after the first step of epoch 1, so that the step boundary where the
    # run stops is not an epoch's end (where a run would stop anyway to evaluate).
    reference_steps = [r for r in _metrics(uninterrupted_exp) if "loss" in r]
    signalled_at = min(r["step"] for r in reference_steps if r["epoch"] == 1)
    assert any(r["step"] == signalled_at + 1 and r["epoch"] == 1 for r in reference_steps)
    stopped = _signalled_run(signalled_at, stop, "group" if to_group else "self", args)
    assert stopped.returncode == 128 + signum, stopped.stdout[-2000:]

    stopped_at = _saved_step(exp_dir / "last.pt")
    assert stopped_at == signalled_at  # the signal came as that step was logged: the run stops after it
    assert f"stopped by {stop} at step {stopped_at}: saved {exp_dir / 'last.pt'}" in stopped.stdout
    assert max(_logged_steps(exp_dir)) == stopped_at  # that step was finished and logged, not dropped

    args[-1] = "4"  # the resumed run checkpoints as the uninterrupted one did (weights do not depend on it)
    resumed = subprocess.run([sys.executable, "-m", "asr", *args], env=ONE_THREAD_ENV, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed from {exp_dir / 'last.pt'} at step {stopped_at}" in resumed.stdout + resumed.stderr
    final, reference = read_checkpoint(exp_dir / "last.pt"), read_checkpoint(uninterrupted_exp / "last.pt")
    assert final["train_state"]["state"] == reference["train_state"]["state"]
    for name, tensor in reference["model_state_dict"].items():
        assert torch.equal(final["model_state_dict"][name], tensor), name
    assert _comparable(_metrics(exp_dir)) == _comparable(_metrics(uninterrupted_exp))


@pytest.mark.slow  # a subprocess that imports part of torch: seconds
def test_ctrl_c_while_torch_loads_ends_with_one_line(speech_manifest, tmp_path):
    """A Ctrl-C in the seconds `asr train` spends importing torch: "interrupted" and 130, nothing
    else. Importing torch again after its import was cut short fails (an AttributeError here; a
    SIGSEGV or SIGABRT when the cut came deeper in torch's setup): asr.commands.import_torch holds
    the Ctrl-C back until torch is whole, and nothing on the way out imports it (leave_rank)."""
    args = ["train", "--train-manifest", str(speech_manifest), "--exp-dir", str(tmp_path / "exp")]
    stopped = subprocess.run(signal_after("import:torch.functional", 1, "SIGINT", "self", args), env=ONE_THREAD_ENV,
                             capture_output=True, text=True, timeout=120, start_new_session=True)
    assert (stopped.returncode, stopped.stderr) == (130, "interrupted\n")


@pytest.mark.slow  # a subprocess that imports torch or matplotlib: seconds
@pytest.mark.parametrize("module,inner,name", [("torch", "torch.functional", "Tensor"),
                                               ("matplotlib.figure", "matplotlib.ft2font", "Figure")])
def test_a_ctrl_c_during_a_compiled_import_is_raised_once_the_module_is_whole(module, inner, name):
    """asr.extras.import_whole holds SIGINT back: raised inside a compiled module's setup, a
    KeyboardInterrupt leaves it half made (tests/stop_loop.py saw SIGSEGV and SIGABRT follow).
    Here the Ctrl-C comes as `inner` starts to be imported, within `module`'s import."""
    code = "\n".join([
        "import os, signal, sys",
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})",
        "from signal_after import SignalOnImport",
        f"sys.meta_path.insert(0, SignalOnImport({inner!r}, lambda: os.kill(os.getpid(), signal.SIGINT)))",
        "from asr.extras import import_whole",
        "try:",
        f"    import_whole({module!r})",
        "except KeyboardInterrupt:",
        f"    print('interrupted; whole:', hasattr(sys.modules.get({module!r}), {name!r}))",
    ])
    result = subprocess.run([sys.executable, "-c", code], env=ONE_THREAD_ENV, capture_output=True, text=True,
                            timeout=120)
    assert result.stdout == "interrupted; whole: True\n", result.stderr[-2000:]


# --- what a run logs -----------------------------------------------------------------------------

STEP_LINE = re.compile(r"step (\d+)  epoch (\d+)  loss ([\d.]+)  lr (\S+)  ([\d.]+) audio-s/s  elapsed \d+:\d\d:\d\d")


@pytest.mark.slow
def test_a_log_file_gets_plain_step_lines_as_training_goes(resume_config, speech_manifest, tmp_path):
    """Output redirected to a file: one line per log window, written (flushed) when the window
    ends, not at exit; a line per dev evaluation; no progress bar."""
    exp_dir, log = tmp_path / "exp", tmp_path / "train.log"
    args = ["train", "--config", str(resume_config), "--exp-dir", str(exp_dir), "--train.num-workers", "0",
            "--train.epochs", "2", "--train.log-every", "2", "--dev-manifest", str(speech_manifest)]
    with open(log, "w") as out:  # the run stops itself (SIGSTOP) after its first log window, step 2
        proc = subprocess.Popen(signal_after(LOG_WINDOW, 1, "SIGSTOP", "self", args), env=ONE_THREAD_ENV,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _, status = os.waitpid(proc.pid, os.WUNTRACED)
            assert os.WIFSTOPPED(status), log.read_text()
            assert [m[1] for m in STEP_LINE.finditer(log.read_text())] == ["2"], "step 2's line is not in the file"
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        assert proc.wait(timeout=120) == 0, log.read_text()

    text = log.read_text()
    assert "\r" not in text and "it/s" not in text  # no progress bar
    records = _metrics(exp_dir)
    windows = [r for r in records if "loss" in r]
    printed = [m.groups() for m in STEP_LINE.finditer(text)]
    assert [(int(s), int(e), float(loss)) for s, e, loss, _, _ in printed] == \
        [(r["step"], r["epoch"], pytest.approx(r["loss"], abs=1e-3)) for r in windows]
    assert [r["step"] for r in windows] == [2, 4, 6]
    dev = [r for r in records if "dev_wer" in r]
    assert len(dev) == 2
    for r in dev:
        assert f"step {r['step']}  epoch {r['epoch']}  dev WER {r['dev_wer']:.2%}" in text


def test_logged_loss_and_gradient_norm_are_means_over_the_log_window(speech_manifest, tmp_path):
    """The same run logged every step and every third step: each line of the second is the
    mean of three lines of the first (not the last step's value)."""
    def config(log_every: int) -> RunConfig:
        return RunConfig(train_manifest=str(speech_manifest), model=ModelConfig(hidden_size=16, num_layers=1),
                         train=TrainConfig(epochs=2, max_batch_seconds=4.0, warmup_steps=2, log_every=log_every,
                                           num_workers=0, device="cpu"))

    run(config(1), tmp_path / "every")
    run(config(3), tmp_path / "third")
    every = [r for r in _metrics(tmp_path / "every") if "loss" in r]
    third = [r for r in _metrics(tmp_path / "third") if "loss" in r]
    assert [r["step"] for r in third] == [3, 6]
    for line in third:
        window = every[line["step"] - 3: line["step"]]
        for key in ("loss", "grad_norm"):
            assert line[key] == pytest.approx(sum(r[key] for r in window) / 3, abs=2e-3), key
        assert line["loss"] != pytest.approx(window[-1]["loss"], abs=1e-3)  # the mean, not the last step
        assert line["audio_sec_per_sec"] > 0
    assert third[0]["cpu_s"] <= third[1]["cpu_s"]


def test_cpu_seconds_carry_on_across_a_resume(tmp_path):
    """A resumed run's cpu_s starts from the last line it kept, so runs compare at equal compute."""
    from asr.distributed import Distributed
    from asr.metrics_logger import MetricsLogger

    (tmp_path / "metrics.jsonl").write_text('{"step": 10, "loss": 1.0, "cpu_s": 100.0}\n{"step": 20, "cpu_s": 150}\n')
    logger = MetricsLogger(tmp_path, is_main=True)
    logger.resume(keep=1)  # the checkpoint was written after step 10: the second line goes
    logger.add_step(loss=1.0, grad_norm=1.0, audio_seconds=1.0)
    start = time.process_time()
    while time.process_time() - start < 0.3:  # some CPU time
        pass
    logger.log_window(step=11, epoch=0, lr=1e-3, dist=Distributed(), device=torch.device("cpu"))
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert 100.0 < last["cpu_s"] < 150.0


def test_init_from_starts_a_new_run_from_weights_and_refuses_other_sizes(speech_manifest, tmp_path, capsys):
    def config(hidden_size: int, init_from: str) -> RunConfig:
        return RunConfig(train_manifest=f"{speech_manifest}*2",  # every utterance twice
                         model=ModelConfig(hidden_size=hidden_size, num_layers=1),
                         train=TrainConfig(epochs=1, max_batch_seconds=4.0, num_workers=0, device="cpu",
                                           init_from=init_from))

    source = tmp_path / "source"
    first = run(config(16, ""), source)
    tokenizer = CharTokenizer()
    model = CTCModel(resolve(config(16, ""), tokenizer).model)
    load_initial_weights(source / "last.pt", model, tokenizer, config(16, ""))
    saved = read_checkpoint(source / "last.pt")["model_state_dict"]
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    assert len(read_mix(f"{speech_manifest}*2")) == 2 * len(read_manifest(speech_manifest))
    with pytest.raises(ConfigError, match="does not match"):
        other = resolve(config(8, ""), tokenizer)
        load_initial_weights(source / "last.pt", CTCModel(other.model), tokenizer, other)
    finished = run(config(16, str(source / "last.pt")), tmp_path / "continued")
    assert finished.state.step == first.steps_per_epoch  # a whole new epoch, not a resume
    assert "starting from the weights of" in capsys.readouterr().out


def test_the_trainer_resolves_a_copy_of_the_config_and_leaves_the_callers_alone(speech_manifest, tmp_path):
    config = RunConfig(train_manifest=str(speech_manifest), features=FeatureConfig(n_mels=40),
                       model=ModelConfig(hidden_size=8, num_layers=1, vocab_size=5),
                       train=TrainConfig(epochs=1, max_batch_seconds=4.0, num_workers=0, device="cpu"))
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, max_steps=1))
    before = copy.deepcopy(config)
    result = run(config, tmp_path / "exp")
    assert config == before
    resolved = resolve(config, CharTokenizer())
    assert resolved.model == ModelConfig(n_mels=40, hidden_size=8, num_layers=1, vocab_size=len(CharTokenizer()))
    assert result.model.config == resolved.model
    assert read_checkpoint(tmp_path / "exp" / "last.pt")["train_state"]["run_config"] == to_dict(resolved)


class Crash(Exception):
    pass


@pytest.mark.slow  # two training runs
def test_resume_keeps_exactly_one_line_per_logged_step_and_evaluation(speech_manifest, tmp_path, monkeypatch):
    """last.pt written at an epoch's last step, then a crash after the epoch's dev evaluation
    was logged: the resume evaluates again at the same step. Lines written after last.pt are
    dropped, so the log ends as an uninterrupted run's does: no second dev line for that step."""
    config = RunConfig(train_manifest=str(speech_manifest), dev_manifest=str(speech_manifest),
                       model=ModelConfig(hidden_size=16, num_layers=1),
                       train=TrainConfig(epochs=2, max_batch_seconds=4.0, warmup_steps=2, log_every=1,
                                         checkpoint_every=3, num_workers=0, device="cpu"))
    result = run(config, tmp_path / "uninterrupted")
    assert result.steps_per_epoch == 3  # so the checkpoint at step 3 comes just before the epoch's evaluation

    def crash(self, model, epoch):
        raise Crash
    with monkeypatch.context() as patch:
        patch.setattr(Checkpointer, "save_epoch", crash)  # right after the evaluation at the end of epoch 0
        with pytest.raises(Crash):
            run(config, tmp_path / "crashed")
    assert [r["step"] for r in _metrics(tmp_path / "crashed") if "dev_wer" in r] == [3]
    run(config, tmp_path / "crashed")
    assert _comparable(_metrics(tmp_path / "crashed")) == _comparable(_metrics(tmp_path / "uninterrupted"))
    steps = [r["step"] for r in _metrics(tmp_path / "crashed") if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in _metrics(tmp_path / "crashed") if "dev_wer" in r] == [3, 6]


def _lock_holder(exp_dir: Path) -> subprocess.Popen:
    """Another process holding exp_dir's lock as asr.lock does (flock on run.lock, its pid inside) until its stdin
    closes; it says "locked" first."""
    exp_dir.mkdir()
    code = ("import fcntl, os, sys\n"
            f"f = open({str(exp_dir / 'run.lock')!r}, 'w'); fcntl.flock(f, fcntl.LOCK_EX)\n"
            "f.write(f'{os.getpid()}\\n')\n"
            "f.flush(); print('locked', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "locked\n"
    return holder


def test_a_second_run_into_a_busy_exp_dir_is_refused_naming_the_first(speech_manifest, tmp_path, capsys):
    exp_dir = tmp_path / "exp"
    args = ["train", "--exp-dir", str(exp_dir), "--train-manifest", str(speech_manifest), "--model.hidden-size", "8",
            "--model.num-layers", "1", "--train.epochs", "1", "--train.num-workers", "0", "--train.device", "cpu"]
    holder = _lock_holder(exp_dir)
    try:
        assert main(args) == 1
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert f"in use by another run (process {holder.pid})" in err
    assert not (exp_dir / "metrics.jsonl").exists() and not (exp_dir / "last.pt").exists()
    # The holder is gone, its pid still in the lock file: the lock is taken over.
    assert (exp_dir / "run.lock").read_text() == f"{holder.pid}\n"
    assert main(args) == 0
    assert (exp_dir / "last.pt").exists() and (exp_dir / "run.lock").read_text() != f"{holder.pid}\n"


def _nan_on_steps(monkeypatch, steps: set[int] | None) -> None:
    """Make compute_loss return NaN on the given 1-based calls (None: on every call)."""
    import asr.train

    real, calls = asr.train.compute_loss, []

    def compute_loss(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * math.nan if steps is None or len(calls) in steps else loss

    monkeypatch.setattr(asr.train, "compute_loss", compute_loss)


def _nan_config(manifest: Path, epochs: int) -> RunConfig:
    return RunConfig(train_manifest=str(manifest), model=ModelConfig(hidden_size=8, num_layers=1),
                     train=TrainConfig(epochs=epochs, max_batch_seconds=4.0, warmup_steps=1, log_every=1,
                                       num_workers=0, device="cpu"))


def test_a_non_finite_step_is_skipped_counted_and_leaves_the_weights_finite(speech_manifest, tmp_path, monkeypatch):
    _nan_on_steps(monkeypatch, {2, 3})
    result = run(_nan_config(speech_manifest, 2), tmp_path / "exp")
    skipped = [r for r in _metrics(tmp_path / "exp") if "skipped" in r]
    assert [(r["step"], r["skipped_total"]) for r in skipped] == [(2, 1), (3, 2)]
    assert all(math.isfinite(r["loss"]) for r in _metrics(tmp_path / "exp") if "loss" in r)
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    weights = read_checkpoint(tmp_path / "exp" / "last.pt")["model_state_dict"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_too_many_non_finite_steps_in_a_row_stop_with_one_error_line(speech_manifest, tmp_path, monkeypatch,
                                                                      capsys):
    import asr.train

    monkeypatch.setattr(asr.train, "MAX_NON_FINITE_IN_A_ROW", 3)
    _nan_on_steps(monkeypatch, None)
    args = ["train", "--exp-dir", str(tmp_path / "exp"), "--train-manifest", str(speech_manifest),
            "--model.hidden-size", "8", "--model.num-layers", "1", "--train.num-workers", "0",
            "--train.device", "cpu", "--train.max-batch-seconds", "4", "--train.epochs", "5"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: 3 steps in a row (up to step 3)") and len(err.splitlines()) == 1
