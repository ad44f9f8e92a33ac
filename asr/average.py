"""Checkpoint averaging: `asr average --exp-dir EXP --last N` (or `--best N`).

Training with `train.keep_last K` keeps the end-of-epoch weights as EXP/epoch-N.pt and
logs each in EXP/metrics.jsonl as {"step", "epoch", "checkpoint"}, next to the
{"step", "dev_wer"} lines of the dev evaluations. Averaging the weights of the last
few epochs (or of the few with the lowest dev WER at the step they were saved)
usually decodes a little better than any one of them, at no cost at decoding time.

The result is an ordinary checkpoint (load_model reads it) with the config and
vocabulary of its sources, the mean of their weights, no train_state, and the
names of the files it averaged under "averaged_from".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from asr.checkpoint import CheckpointError, read_checkpoint, save_atomic

SAME_IN_ALL = ("model_config", "feature_config", "vocab")  # checkpoint fields that must agree


def epoch_checkpoints(exp_dir: str | os.PathLike) -> list[tuple[Path, float | None]]:
    """The epoch checkpoints logged in EXP/metrics.jsonl that still exist, oldest first,
    each with the dev WER measured at its step (None where there was no dev evaluation)."""
    exp_dir = Path(exp_dir)
    log = exp_dir / "metrics.jsonl"
    if not log.is_file():
        raise CheckpointError(f"{log}: not found (is {exp_dir} a training folder?)")
    saved, dev_wer = {}, {}
    for line_no, line in enumerate(log.read_text(encoding="utf-8").splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise CheckpointError(f"{log}:{line_no}: not a JSON line") from None
        if "checkpoint" in record:
            saved[record["checkpoint"]] = record["step"]
        if "dev_wer" in record:
            dev_wer[record["step"]] = record["dev_wer"]
    found = [(exp_dir / name, dev_wer.get(step)) for name, step in saved.items() if (exp_dir / name).is_file()]
    if not found:
        raise CheckpointError(f"{exp_dir}: no epoch checkpoints (train with --train.keep-last N to keep them)")
    return found


def select_checkpoints(exp_dir: str | os.PathLike, last: int | None = None, best: int | None = None) -> list[Path]:
    """The `last` newest epoch checkpoints, or the `best` with the lowest dev WER (give exactly one)."""
    if (last is None) == (best is None):
        raise CheckpointError("choose exactly one of --last N or --best N")
    name, wanted = ("--last", last) if last is not None else ("--best", best)
    if wanted < 1:
        raise CheckpointError(f"{name} must be at least 1, got {wanted}")
    found = epoch_checkpoints(exp_dir)
    if len(found) < wanted:
        raise CheckpointError(f"{exp_dir}: asked for {wanted} epoch checkpoints, found {len(found)}")
    if last:
        return [path for path, _ in found[-last:]]
    scored = [(wer, path) for path, wer in found if wer is not None]
    if len(scored) < best:
        raise CheckpointError(f"{exp_dir}: only {len(scored)} epoch checkpoint(s) have a dev WER in metrics.jsonl "
                              "(train with a dev_manifest)")
    return [path for _, path in sorted(scored, key=lambda pair: pair[0])[:best]]


def average_checkpoints(paths: list[Path]) -> dict:
    """A checkpoint whose weights are the element-wise mean of those in `paths`."""
    if not paths:
        raise CheckpointError("no checkpoints to average")
    first = read_checkpoint(paths[0])
    total = {k: v.to(torch.float64) for k, v in first["model_state_dict"].items()}
    for path in paths[1:]:
        checkpoint = read_checkpoint(path)
        for field in SAME_IN_ALL:
            if checkpoint[field] != first[field]:
                raise CheckpointError(f"{path}: {field} differs from {paths[0]}; cannot average them")
        for key, value in checkpoint["model_state_dict"].items():
            total[key] += value.to(torch.float64)
    averaged = dict(first)
    averaged.pop("train_state", None)
    averaged["model_state_dict"] = {k: (v / len(paths)).to(first["model_state_dict"][k].dtype)
                                    for k, v in total.items()}
    averaged["averaged_from"] = [Path(p).name for p in paths]
    return averaged


def average(exp_dir: str | os.PathLike, last: int | None = None, best: int | None = None,
            out: str | os.PathLike | None = None) -> Path:
    """`asr average`: write the average of the selected epoch checkpoints.
    Default output: EXP/avg-last-N.pt or EXP/avg-best-N.pt. Returns its path."""
    paths = select_checkpoints(exp_dir, last=last, best=best)
    out = Path(out) if out else Path(exp_dir) / (f"avg-last-{last}.pt" if last else f"avg-best-{best}.pt")
    save_atomic(average_checkpoints(paths), out)
    return out
