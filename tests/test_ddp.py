"""DistributedDataParallel on CPU: `torchrun --nproc_per_node=2` with gloo.

One torchrun launch of this file (see `worker` at the bottom) trains three tiny
runs on the espeak-ng speech fixture and saves each rank's final weights:
    ddp       no dropout, no SpecAugment: comparable with a single process
    noisy     dropout + SpecAugment, so each rank's own RNG stream matters
    resumed   `noisy` killed at its third step, then run again (resumes from step 2)
With world_size 2 and grad_accum 1, step k sees batches 2k (rank 0) and 2k+1
(rank 1) of the epoch's list, each loss a per-batch mean, averaged over ranks. A
single process with grad_accum 2 steps on the same two batches with each loss
halved: the same gradient, so the same weights up to float rounding.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asr.checkpoint import read_checkpoint
from asr.config import ConfigError
from asr.distributed import Distributed, exit_without_finalizing
from asr.features import SpecAugmentConfig
from asr.model import ModelConfig
from asr.text import CharTokenizer
from asr.train import RunConfig, TrainConfig, build_optimization, resolve, run

pytestmark = pytest.mark.slow  # every test reads the runs of one torchrun launch (~20 s)

TOLERANCE = dict(rtol=1e-4, atol=1e-5)  # float rounding differs (summation order, thread counts)


def tiny_config(manifest, noisy: bool = False, **train) -> RunConfig:
    """~12k parameters, one utterance per batch (6 batches, 3 steps an epoch under DDP), 2 epochs."""
    masks = 2 if noisy else 0
    return RunConfig(
        train_manifest=str(manifest),
        model=ModelConfig(subsample=4, hidden_size=24, num_layers=1, dropout=0.3 if noisy else 0.0),
        specaug=SpecAugmentConfig(freq_masks=masks, freq_width=10, time_masks=masks, time_width=10),
        train=TrainConfig(**{"epochs": 2, "max_batch_seconds": 2.5, "lr": 3e-3, "warmup_steps": 2, "log_every": 1,
                             "checkpoint_every": 2, "num_workers": 0, "device": "cpu", "precision": "float32",
                             **train}),
    )


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def metrics(exp_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (exp_dir / "metrics.jsonl").read_text().splitlines()]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 ARGS...`, outside any torchrun this test runs under."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def ddp_dir(speech_manifest, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("ddp")
    result = torchrun(__file__, str(speech_manifest), str(work))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return work


def test_both_ranks_end_with_identical_weights(ddp_dir):
    for name in ("ddp", "noisy", "resumed"):
        rank0, rank1 = weights(ddp_dir / f"{name}-rank0.pt"), weights(ddp_dir / f"{name}-rank1.pt")
        for key in rank0:
            assert torch.equal(rank0[key], rank1[key]), (name, key)


def test_only_rank_0_writes_and_its_checkpoint_holds_the_final_weights(ddp_dir):
    final = weights(ddp_dir / "ddp-rank0.pt")
    saved = read_checkpoint(ddp_dir / "ddp" / "last.pt")
    assert saved["train_state"]["state"]["step"] == 6
    for key in final:
        assert torch.equal(saved["model_state_dict"][key], final[key])
    assert len(metrics(ddp_dir / "ddp")) == 6  # one per step (log_every=1), not one per rank
    assert len(saved["train_state"]["rng"]) == 2  # each rank's RNG state, for resuming


def test_ddp_matches_a_single_process_with_the_same_global_batch(ddp_dir, speech_manifest, tmp_path):
    ddp = weights(ddp_dir / "ddp-rank0.pt")
    single = run(tiny_config(speech_manifest, grad_accum=2), tmp_path / "accum2").model.state_dict()
    other_batching = run(tiny_config(speech_manifest), tmp_path / "accum1").model.state_dict()
    initial = build_optimization(resolve(tiny_config(speech_manifest), CharTokenizer()), Distributed(),
                                 torch.device("cpu")).model.state_dict()
    for key in ddp:
        torch.testing.assert_close(single[key], ddp[key], **TOLERANCE, msg=key)
    # Adam hides a constant factor in the gradients; the logged loss and gradient norm do not.
    for ddp_line, single_line in zip(metrics(ddp_dir / "ddp"), metrics(tmp_path / "accum2"), strict=True):
        for field in ("step", "loss", "grad_norm", "lr"):
            assert single_line[field] == pytest.approx(ddp_line[field], rel=1e-3), (field, ddp_line)
    # The comparison can fail: training moved the weights, and other batches give other weights.
    def distance(a, b):
        return max((a[k] - b[k]).abs().max().item() for k in a)
    assert distance(ddp, initial) > 100 * TOLERANCE["atol"]
    assert distance(ddp, other_batching) > 100 * TOLERANCE["atol"]


def test_resume_under_ddp_gives_the_uninterrupted_result(ddp_dir):
    uninterrupted, resumed = weights(ddp_dir / "noisy-rank0.pt"), weights(ddp_dir / "resumed-rank0.pt")
    for key in uninterrupted:
        assert torch.equal(uninterrupted[key], resumed[key]), key
    assert len(metrics(ddp_dir / "resumed")) == 6  # the lines of the lost step 3 were dropped and written again


def test_resuming_with_another_number_of_processes_is_refused(ddp_dir, speech_manifest):
    with pytest.raises(ConfigError, match="written by 2 process"):
        run(tiny_config(speech_manifest), ddp_dir / "ddp")


def test_exit_without_finalizing_keeps_buffered_output_and_the_exit_code():
    code = "from asr.distributed import exit_without_finalizing\nprint('saved', end='')\nexit_without_finalizing(3)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout to a pipe: block-buffered
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert (result.returncode, result.stdout) == (3, "saved")


def test_asr_train_under_torchrun_fails_with_one_error_line_per_rank(tmp_path):
    missing = tmp_path / "missing.jsonl"
    result = torchrun("-m", "asr", "train", "--train-manifest", str(missing), "--exp-dir", str(tmp_path / "exp"),
                      "--train.device", "cpu")
    assert result.returncode != 0
    assert result.stderr.count(f"error: {missing}: manifest not found\n") == 2, result.stderr[-3000:]
    assert "exitcode  : 1 " in result.stderr and "Signal 6" not in result.stderr, result.stderr[-3000:]


class Crash(Exception):
    pass


def worker(manifest: str, work: Path) -> None:
    """Runs in each torchrun process: the three runs described in the module docstring."""
    import torch.distributed as dist

    import asr.train

    rank = int(os.environ["RANK"])
    dist.init_process_group("gloo")  # ours, so that run() may be called several times
    result = run(tiny_config(manifest), work / "ddp")
    torch.save(result.model.state_dict(), work / f"ddp-rank{rank}.pt")
    result = run(tiny_config(manifest, noisy=True), work / "noisy")
    torch.save(result.model.state_dict(), work / f"noisy-rank{rank}.pt")

    compute_loss, calls = asr.train.compute_loss, []

    def crash_on_third_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # last.pt was written after step 2
            raise Crash
        return compute_loss(*args, **kwargs)

    asr.train.compute_loss = crash_on_third_step
    try:
        run(tiny_config(manifest, noisy=True), work / "resumed")
    except Crash:
        pass
    asr.train.compute_loss = compute_loss
    result = run(tiny_config(manifest, noisy=True), work / "resumed")
    torch.save(result.model.state_dict(), work / f"resumed-rank{rank}.pt")
    dist.destroy_process_group()
    exit_without_finalizing(0)


if __name__ == "__main__":
    worker(sys.argv[1], Path(sys.argv[2]))
