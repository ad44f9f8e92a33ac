"""How every rank of a torchrun job leaves when one fails (asr.distributed.report_failure).

One rank of `torchrun --standalone --nproc_per_node=2` (gloo, CPU) fails at a chosen call
(tests/fault_after.py): a bug (an unexpected exception), an AsrError met by that rank alone, or
SIGKILL. Every rank must leave at once (no wait for a collective's timeout), torchrun's status
must be non-zero, the failing rank says in one `error: rank R: ...` line why (a bug's traceback
once, above it), the other rank at most says in one line that it stopped too (never a traceback
of the collective that failed under it), no rank aborts (SIGABRT, "terminate called"), and
what was written stays good: the resume finishes the job. Each launch takes ~10-20 s on a busy
machine: marked slow.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ONE_THREAD_ENV, SENTENCES

from asr.cli import main
from asr.distributed import lost_peer, report_failure

ROOT = Path(__file__).resolve().parent.parent
FAULT = str(Path(__file__).parent / "fault_after.py")
STOPPED_TOO = "stopped because another rank of the job ended"


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 ARGS...` with one thread a rank. The timeout is
    the hang guard: a rank left waiting would wait for days (asr.shard.WAIT)."""
    env = {k: v for k, v in ONE_THREAD_ENV.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)


def check_one_rank_failed(result: subprocess.CompletedProcess, why: str | None, traceback: bool = False) -> None:
    """The failing rank said `why` in one line starting so (None: a rank killed, with nothing to
    say); the other rank stopped quietly (torchrun's SIGTERM came first) or with one line."""
    err = result.stderr
    assert result.returncode != 0, err[-3000:]
    mine = [line for line in err.splitlines() if why is not None and line.startswith(why)]
    assert len(mine) == (why is not None), err[-3000:]
    others = [line for line in err.splitlines() if line.startswith("error: ") and line not in mine]
    assert all(STOPPED_TOO in line for line in others) and len(others) <= 1, err[-3000:]
    assert "gloo/transport" not in err, err[-3000:]  # no traceback of the collective that failed under a rank
    # one traceback of the bug, none from the ranks otherwise (torchrun's own summary has one)
    assert err.count("Traceback (most recent call last)") == 1 + traceback, err[-3000:]
    for abort in ("Signal 6", "SIGABRT", "terminate called", "core dumped"):
        assert abort not in err, err[-3000:]


@pytest.fixture(scope="module")
def folder(speech_dir, tmp_path_factory) -> Path:
    """The six sentences."""
    folder = tmp_path_factory.mktemp("folder")
    for i in range(len(SENTENCES)):
        (folder / f"utt{i}.wav").symlink_to(speech_dir / f"utt{i}.wav")
    return folder


@pytest.fixture(scope="module")
def one_process(folder, tiny_checkpoint, tmp_path_factory) -> bytes:
    """The --output of one process: what every interrupted sharded run must resume to."""
    out = tmp_path_factory.mktemp("one") / "one.txt"
    assert main(["transcribe", str(folder), "--model", str(tiny_checkpoint), "--output", str(out)]) == 0
    return out.read_bytes()


# ---- in one process: nothing changes --------------------------------------------------------


def test_a_bug_in_one_process_keeps_python_s_traceback(folder, tiny_checkpoint, monkeypatch):
    import asr.transcribe

    def bug(*_args, **_kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(asr.transcribe, "transcript_line", bug)
    with pytest.raises(ZeroDivisionError):
        main(["transcribe", str(folder), "--model", str(tiny_checkpoint)])


def test_report_failure_says_one_line_for_a_lost_peer_and_adds_a_bug_s_traceback(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    gone = RuntimeError("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:547] Connection closed by peer [::1]:80")
    assert lost_peer(gone) and not lost_peer(RuntimeError("shape mismatch")) and not lost_peer(OSError("disk full"))
    report_failure(gone)
    assert capsys.readouterr().err == f"error: rank 1: {STOPPED_TOO} (Connection closed by peer [::1]:80)\n"
    try:
        raise ValueError("a bug")
    except ValueError as err:
        report_failure(err)
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last)")
    assert err.endswith("\nerror: rank 1: ValueError: a bug (a bug: the traceback above)\n")


# ---- transcribe -----------------------------------------------------------------------------

WHY = {"bug": "error: rank 1: RuntimeError: injected bug in asr.transcribe:_append_line",
       "error": "error: injected error in asr.transcribe:_append_line"}  # an AsrError's line, as in one process


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["bug", "error", "SIGKILL"])
def test_a_rank_failing_mid_run_stops_every_rank_and_the_resume_finishes(fault, folder, tiny_checkpoint,
                                                                       one_process, tmp_path):
    out = tmp_path / "out.txt"
    args = ["transcribe", str(folder), "--model", str(tiny_checkpoint), "--output", str(out)]
    failed = torchrun(FAULT, "1", "asr.transcribe:_append_line", "2", fault, *args)  # rank 1, its 2nd line
    if fault == "SIGKILL":  # nothing of its own to say: torchrun's summary names it; rank 0 says it stopped
        assert "Signal 9 (SIGKILL)" in failed.stderr, failed.stderr[-3000:]
        check_one_rank_failed(failed, None)
    else:
        check_one_rank_failed(failed, WHY[fault], traceback=fault == "bug")
    assert not out.exists() and list(tmp_path.glob(".out.txt.part-*"))

    resumed = torchrun("-m", "asr", *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert out.read_bytes() == one_process
    assert not list(tmp_path.glob(".out.txt.part-*"))


@pytest.mark.slow
def test_a_bug_in_the_final_merge_keeps_the_parts_for_the_resume(folder, tiny_checkpoint, one_process, tmp_path):
    out = tmp_path / "out.txt"
    args = ["transcribe", str(folder), "--model", str(tiny_checkpoint), "--output", str(out)]
    failed = torchrun(FAULT, "0", "asr.shard:merge_parts", "1", "bug", *args)
    check_one_rank_failed(failed, "error: rank 0: RuntimeError: injected bug in asr.shard:merge_parts", traceback=True)
    parts = list(tmp_path.glob(".out.txt.part-*"))
    assert not out.exists() and sum(len(p.read_text().splitlines()) for p in parts) == len(SENTENCES)

    resumed = torchrun("-m", "asr", *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert out.read_bytes() == one_process


# ---- evaluate -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_bug_while_rank_0_scores_stops_the_rank_waiting_for_it(tiny_checkpoint, speech_manifest, tmp_path):
    args = ["evaluate", "--model", str(tiny_checkpoint), "--manifest", str(speech_manifest), "--jobs", "0",
            "--out-dir", str(tmp_path / "eval")]
    failed = torchrun(FAULT, "0", "asr.shard:evaluate", "1", "bug", *args)
    check_one_rank_failed(failed, "error: rank 0: RuntimeError: injected bug in asr.shard:evaluate", traceback=True)
    assert not (tmp_path / "eval").exists()


# ---- train ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["bug", "SIGKILL"])
def test_a_rank_failing_mid_training_stops_both_and_last_pt_resumes(fault, speech_manifest, tmp_path):
    exp_dir = tmp_path / "exp"
    args = ["train", "--train-manifest", str(speech_manifest), "--exp-dir", str(exp_dir), "--model.hidden-size", "24",
            "--model.num-layers", "1", "--model.subsample", "4", "--train.epochs", "2", "--train.max-batch-seconds",
            "2.5", "--train.checkpoint-every", "2", "--train.num-workers", "0", "--train.threads", "1",
            "--train.device", "cpu", "--train.precision", "float32"]
    # Rank 1's 5th loss (step 5 of 6): last.pt holds step 4; rank 0 is in step 5's all-reduce or after it.
    failed = torchrun(FAULT, "1", "asr.train:compute_loss", "5", fault, *args)
    if fault == "SIGKILL":
        assert "Signal 9 (SIGKILL)" in failed.stderr, failed.stderr[-3000:]
        check_one_rank_failed(failed, None)
    else:
        check_one_rank_failed(failed, "error: rank 1: RuntimeError: injected bug in asr.train:compute_loss",
                              traceback=True)

    resumed = torchrun("-m", "asr", *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {exp_dir / 'last.pt'} at step 4" in resumed.stdout + resumed.stderr
    assert "finished at step 6" in resumed.stdout
