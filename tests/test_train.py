"""asr.train: the LR schedule, a CPU overfit run that must reach near-zero error, and exact resume."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ONE_THREAD_ENV

from asr.checkpoint import CheckpointError, load_model, read_checkpoint
from asr.cli import main
from asr.data.manifest import read_manifest
from asr.decode import GreedyDecoder
from asr.evaluate import decode_utterances, score
from asr.train import TrainConfig, get_lr


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


def test_tiny_model_overfits_six_sentences(overfit_exp, speech_manifest):
    """Trained by the `overfit_exp` fixture through asr.train.run: greedy CER < 5% on its training set."""
    loaded = load_model(overfit_exp / "last.pt")
    utterances = read_manifest(speech_manifest)
    hyps = decode_utterances(loaded.model, loaded.features, utterances, GreedyDecoder(loaded.tokenizer),
                             num_workers=0)
    summary, rows = score(utterances, hyps)
    report = "\n".join(f"{row['ref']!r} -> {row['hyp']!r}" for row in rows)
    assert summary["cer"] < 0.05, report
    losses = [record["loss"] for record in _metrics(overfit_exp) if "loss" in record]
    assert len(losses) >= 20
    assert losses[-1] < losses[0] / 20, losses
    assert max(losses[-5:]) < min(losses[:5])


# --- kill and resume -------------------------------------------------------------------------

RESUME_STEPS_BEFORE_KILL = 4


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
                 "--train.num_workers", "0"]) == 0
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


def _comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "audio_sec_per_sec"} for r in records]  # timings differ


def _start_and_kill(command: list[str], exp_dir: Path) -> None:
    """Start training and SIGKILL it (with its DataLoader workers) once the log is ahead of last.pt."""
    proc = subprocess.Popen(command, env=ONE_THREAD_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its own process group: the kill takes its workers too
    try:
        deadline = time.monotonic() + 120
        while not RESUME_STEPS_BEFORE_KILL <= _saved_step(exp_dir / "last.pt") < _logged_step(exp_dir):
            assert proc.poll() is None, "training exited before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("num_workers", [0, 1])
def test_killed_run_resumes_to_the_same_weights(resume_config, uninterrupted_exp, tmp_path, num_workers):
    exp_dir = tmp_path / "exp"
    command = [sys.executable, "-m", "asr", "train", "--config", str(resume_config), "--exp-dir", str(exp_dir),
               "--train.num_workers", str(num_workers)]
    total_steps = read_checkpoint(uninterrupted_exp / "last.pt")["train_state"]["state"]["step"]

    # Kill once metrics.jsonl has steps newer than last.pt: the resume must drop and redo them.
    # A checkpoint can land between that check and the kill; then the kill is not mid-window
    # and we try again in a fresh folder (a retry of the set-up, not of the assertions below).
    for _attempt in range(5):
        shutil.rmtree(exp_dir, ignore_errors=True)
        _start_and_kill(command, exp_dir)
        killed_at = _saved_step(exp_dir / "last.pt")
        if killed_at < _logged_step(exp_dir):
            break
    assert killed_at < _logged_step(exp_dir) < total_steps, "the kill must land mid-run, between checkpoints"

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
