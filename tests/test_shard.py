"""`asr transcribe` and `asr evaluate` under torchrun (asr/shard.py), and length-sorted batching.

The torchrun tests start `torchrun --standalone --nproc_per_node=2` (gloo, CPU) on a folder of
the espeak sentences, one long recording cut at pauses and one corrupt file, and compare every
output byte for byte with one process's (`asr.cli.main` in this process). Each launch takes
~10-20 s on a busy machine: they are marked slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ONE_THREAD_ENV, SENTENCES, signal_after

from asr.audio import SAMPLE_RATE, load_audio
from asr.checkpoint import load_model
from asr.cli import main
from asr.configs import TranscribeOptions
from asr.shard import balance
from asr.transcribe import iter_transcripts
from asr.vad import SegmentOptions

ROOT = Path(__file__).resolve().parent.parent


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 ARGS...` with one thread a rank."""
    env = {k: v for k, v in ONE_THREAD_ENV.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)


def files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def long_recording(speech_dir, tmp_path_factory) -> Path:
    """The six sentences with 1 s pauses: ~17 s, longer than a segment, so it is cut at pauses."""
    pause = np.zeros(SAMPLE_RATE, dtype=np.float32)
    clips = [part for i in range(len(SENTENCES)) for part in (load_audio(speech_dir / f"utt{i}.wav"), pause)]
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, np.concatenate(clips), SAMPLE_RATE)
    return path


@pytest.fixture(scope="module")
def collection(speech_dir, long_recording, tmp_path_factory) -> Path:
    """A folder: the six sentences (three of them in sub/), the long recording, a corrupt file."""
    folder = tmp_path_factory.mktemp("collection")
    (folder / "sub").mkdir()
    for i in range(len(SENTENCES)):
        (folder / ("sub" if i % 2 else ".") / f"utt{i}.wav").symlink_to(speech_dir / f"utt{i}.wav")
    (folder / "long.wav").symlink_to(long_recording)
    (folder / "sub" / "bad.wav").write_bytes(b"RIFF not really a wav file")
    return folder


def transcribe_args(collection: Path, checkpoint: Path, *flags: str) -> list[str]:
    return ["transcribe", str(collection), "--model", str(checkpoint), "--min-speech-seconds", "0.1", *flags]


def check_failed_once(result: subprocess.CompletedProcess) -> None:
    """The corrupt file is one error line, from the rank that had it, and torchrun's status says so."""
    assert result.returncode != 0, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "bad.wav" in errors[0], result.stderr[-3000:]


# ---- shares ---------------------------------------------------------------------------------


def test_balance_gives_each_index_once_in_input_order_with_near_equal_sums():
    rng = np.random.default_rng(0)
    durations = list(rng.uniform(1, 100, size=101))
    shares = balance(durations, 4)
    assert sorted(i for share in shares for i in share) == list(range(101))
    assert all(share == sorted(share) for share in shares)
    sums = [sum(durations[i] for i in share) for share in shares]
    assert max(sums) - min(sums) <= max(durations)  # greedy longest-first never misses by more
    assert balance(durations, 4) == shares  # every rank computes the same


def test_balance_puts_the_longest_items_apart_and_handles_fewer_items_than_shares():
    assert balance([1.0, 10.0, 9.0, 2.0], 2) == [[0, 1], [2, 3]]  # 10 + 1 against 9 + 2
    assert balance([3.0], 3) == [[0], [], []]


# ---- length-sorted batches (what a GPU gets): the same transcripts -----------------------------


def test_length_sorted_batches_give_the_same_transcripts_as_unbatched(tiny_checkpoint, speech_dir, long_recording,
                                                                       monkeypatch):
    import asr.transcribe

    loaded = load_model(tiny_checkpoint)
    sources = [speech_dir / f"utt{i}.wav" for i in range(3)] + [long_recording] + \
              [speech_dir / f"utt{i}.wav" for i in range(3, 6)]
    segments = SegmentOptions(min_speech_seconds=0.1)

    def run(**options):
        return [(str(s), h.text, [(w.text, w.start, w.end) for w in h.words]) for s, h in
                iter_transcripts(loaded, sources, options=TranscribeOptions(**options, segments=segments))]

    one_by_one = run(batch_segments=1)
    assert run(batch_segments=8) == one_by_one
    calls, run_model = [], asr.transcribe.run_model
    monkeypatch.setattr(asr.transcribe, "run_model",
                        lambda loaded, batch: calls.append(batch) or run_model(loaded, batch))
    assert run(batch_seconds=6.0) == one_by_one
    assert len(calls) > 2 and any(len(batch) > 1 for batch in calls)
    for batch in calls:  # sorted by length and within the padded budget (a longer segment alone)
        lengths = [s.end - s.start for s in batch]
        assert lengths == sorted(lengths) and (len(batch) == 1 or len(batch) * max(lengths) <= 6.0)
    assert all(any(h) for _, h, _ in one_by_one)  # the comparison is of real (if untrained) text


def test_batch_seconds_below_zero_is_one_error_line(tiny_checkpoint, speech_dir, capsys):
    assert main(["transcribe", str(speech_dir), "--model", str(tiny_checkpoint), "--batch-seconds", "-1"]) == 1
    assert "batch_seconds must be 0 or more" in capsys.readouterr().err


# ---- torchrun: transcribe --------------------------------------------------------------------


@pytest.mark.slow
def test_two_ranks_write_the_output_dir_of_one_process(tiny_checkpoint, collection, tmp_path):
    assert main(transcribe_args(collection, tiny_checkpoint, "--format", "all", "--output-dir",
                                str(tmp_path / "one"))) == 1
    result = torchrun("-m", "asr", *transcribe_args(collection, tiny_checkpoint, "--format", "all", "--output-dir",
                                                      str(tmp_path / "two")))
    check_failed_once(result)
    one = files(tmp_path / "one")
    assert len(one) == 4 * 7 and "sub/utt1.srt" in one  # 7 good inputs, 4 formats, names kept
    assert files(tmp_path / "two") == one


@pytest.mark.slow
def test_two_ranks_merge_one_jsonl_in_input_order(tiny_checkpoint, collection, tmp_path):
    assert main(transcribe_args(collection, tiny_checkpoint, "--format", "jsonl", "--output",
                                str(tmp_path / "one.jsonl"))) == 1
    result = torchrun("-m", "asr", *transcribe_args(collection, tiny_checkpoint, "--format", "jsonl", "--output",
                                                      str(tmp_path / "two.jsonl")))
    check_failed_once(result)
    one = (tmp_path / "one.jsonl").read_bytes()
    assert len(one.splitlines()) == 7
    assert (tmp_path / "two.jsonl").read_bytes() == one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.jsonl", "two.jsonl"]  # parts merged and removed


@pytest.mark.slow
def test_two_ranks_print_on_stdout_in_input_order(tiny_checkpoint, collection, capsys):
    assert main(transcribe_args(collection, tiny_checkpoint)) == 1
    one = capsys.readouterr().out
    result = torchrun("-m", "asr", *transcribe_args(collection, tiny_checkpoint))
    check_failed_once(result)
    assert result.stdout == one and len(one.splitlines()) == 7


@pytest.mark.slow
def test_an_interrupted_sharded_run_resumes_to_the_uninterrupted_output(tiny_checkpoint, collection, tmp_path):
    out = tmp_path / "out.txt"
    args = transcribe_args(collection, tiny_checkpoint, "--output", str(out))
    assert main(transcribe_args(collection, tiny_checkpoint, "--output", str(tmp_path / "one.txt"))) == 1
    # A rank is SIGKILLed right after its 2nd line (tests/signal_after.py); torchrun stops the other.
    hook = signal_after("asr.transcribe:_append_line", 2, "SIGKILL", "self", args)[1:]
    killed = torchrun(*hook)
    assert killed.returncode != 0
    parts = sorted(tmp_path.glob(".out.txt.part-*"))
    assert not out.exists() and sum(len(p.read_text().splitlines()) for p in parts) >= 2

    without_resume = torchrun("-m", "asr", *args)
    assert without_resume.returncode != 0 and "pass --resume" in without_resume.stderr
    resumed = torchrun("-m", "asr", *args, "--resume")
    check_failed_once(resumed)
    assert "resuming:" in resumed.stderr
    assert out.read_bytes() == (tmp_path / "one.txt").read_bytes()
    assert not list(tmp_path.glob(".out.txt.part-*"))


def test_one_process_resuming_takes_in_the_parts_of_an_interrupted_sharded_run(tiny_checkpoint, collection,
                                                                               tmp_path):
    assert main(transcribe_args(collection, tiny_checkpoint, "--format", "jsonl", "--output",
                                str(tmp_path / "one.jsonl"))) == 1
    lines = (tmp_path / "one.jsonl").read_text().splitlines(keepends=True)
    out = tmp_path / "out.jsonl"
    (tmp_path / ".out.jsonl.part-0").write_text(lines[1] + lines[4])  # as two ranks left them
    (tmp_path / ".out.jsonl.part-1").write_text(lines[2] + lines[6][:20])  # a torn last line
    args = transcribe_args(collection, tiny_checkpoint, "--format", "jsonl", "--output", str(out))
    assert main(args) == 1  # refused without --resume: the parts are not lost
    assert not out.exists()
    assert main([*args, "--resume"]) == 1  # the corrupt file
    assert out.read_text() == "".join(lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.jsonl", "out.jsonl"]


def test_resuming_after_a_merge_that_was_killed_before_the_parts_went_keeps_each_line_once(tiny_checkpoint,
                                                                                         collection, tmp_path, capsys):
    assert main(transcribe_args(collection, tiny_checkpoint, "--output", str(tmp_path / "one.txt"))) == 1
    lines = (tmp_path / "one.txt").read_text().splitlines(keepends=True)
    out = tmp_path / "out.txt"
    out.write_text(lines[0] + lines[1] + lines[2])  # merged, atomically ...
    (tmp_path / ".out.txt.part-0").write_text(lines[0] + lines[2])  # ... but the parts were still there
    (tmp_path / ".out.txt.part-1").write_text(lines[1])
    capsys.readouterr()
    assert main(transcribe_args(collection, tiny_checkpoint, "--output", str(out), "--resume")) == 1  # bad.wav
    assert "resuming: 3 file(s) already done, 5 to go" in capsys.readouterr().err  # not transcribed again
    assert out.read_text() == "".join(lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.txt", "out.txt"]


# ---- torchrun: evaluate ----------------------------------------------------------------------


@pytest.mark.slow
def test_evaluate_under_torchrun_writes_one_process_s_wer_and_recogs(tiny_checkpoint, speech_manifest, tmp_path,
                                                                     capsys):
    args = ["evaluate", "--model", str(tiny_checkpoint), "--manifest", str(speech_manifest), "--jobs", "0"]
    assert main([*args, "--out-dir", str(tmp_path / "one")]) == 0
    line = capsys.readouterr().out
    result = torchrun("-m", "asr", *args, "--out-dir", str(tmp_path / "two"))
    assert result.returncode == 0, result.stderr[-3000:]
    one = files(tmp_path / "one")
    assert set(one) == {"recogs-speech.txt", "wer-summary-speech.json"}
    assert files(tmp_path / "two") == one
    assert json.loads(one["wer-summary-speech.json"])["utterances"] == len(SENTENCES)
    assert result.stdout == line.replace(str(tmp_path / "one"), str(tmp_path / "two"))  # one line, rank 0's


# ---- benchmarks.gpu --------------------------------------------------------------------------


def test_gpu_benchmark_without_cuda_says_so_and_exits_0():
    env = {**ONE_THREAD_ENV, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a machine with one
    result = subprocess.run([sys.executable, "-m", "benchmarks.gpu"], capture_output=True, text=True,
                            timeout=120, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no CUDA device" in result.stdout
