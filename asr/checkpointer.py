"""The checkpoints of one training run: exp_dir/last.pt, best.pt and epoch-N.pt, written and restored.

    checkpointer = Checkpointer(exp_dir, config, tokenizer, dist)   # config: the resolved RunConfig
    saved = checkpointer.restore(model, optimizer, scaler)          # None: no last.pt, a new run
    checkpointer.save_last(model, optimizer, scaler, state, log_lines)   # every rank calls it
    checkpointer.save_best(model); checkpointer.save_epoch(model, epoch)  # rank 0 writes

last.pt carries `train_state`, everything an exact resume needs:
    "state"       TrainState fields: step, epoch, batch_in_epoch, best_wer
    "optimizer"   AdamW's state_dict;  "scaler": the GradScaler's
    "rng"         one dict per rank: torch, numpy, python (and cuda) generator states
    "run_config"  the resolved RunConfig as a dict
    "log_lines"   lines of metrics.jsonl written so far (a resume drops the ones after them)
best.pt and epoch-N.pt are plain checkpoints (asr.checkpoint), without train_state.
Files are written atomically (asr.checkpoint.save_atomic), by rank 0 only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asr.checkpoint import make_checkpoint, read_checkpoint, save_atomic
from asr.config import ConfigError, to_dict
from asr.configs import RunConfig
from asr.distributed import Distributed
from asr.text import CharTokenizer


@dataclass
class TrainState:
    step: int = 0  # optimizer steps taken
    epoch: int = 0  # current epoch
    batch_in_epoch: int = 0  # batches of `epoch` already consumed
    best_wer: float = float("inf")


@dataclass(frozen=True)
class Restored:
    """What last.pt gives back besides the weights and optimizer state it loads."""

    state: TrainState
    log_lines: int  # lines of metrics.jsonl that belong to the run up to this checkpoint


class Checkpointer:
    """Writes and restores the checkpoints of the run in `exp_dir` (see the module docstring)."""

    def __init__(self, exp_dir: Path, config: RunConfig, tokenizer: CharTokenizer, dist: Distributed):
        self.exp_dir, self.config, self.tokenizer, self.dist = Path(exp_dir), config, tokenizer, dist

    @property
    def last(self) -> Path:
        return self.exp_dir / "last.pt"

    def save_last(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                  state: TrainState, log_lines: int) -> None:
        """Write last.pt (rank 0) with every rank's RNG state, so that each resumes its own stream.
        Called on all ranks (it gathers their RNG states)."""
        rng = self.dist.gather(_rng_state())
        if not self.dist.is_main:
            return
        train_state = {
            "state": vars(state).copy(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": rng,  # one per rank
            "run_config": to_dict(self.config),
            "log_lines": log_lines,
        }
        save_atomic(make_checkpoint(model, self.config.features, self.tokenizer, train_state=train_state), self.last)

    def save_best(self, model: torch.nn.Module) -> None:
        """best.pt: the weights with the lowest dev WER so far (the caller decides; rank 0 writes)."""
        if self.dist.is_main:
            save_atomic(make_checkpoint(model, self.config.features, self.tokenizer), self.exp_dir / "best.pt")

    def save_epoch(self, model: torch.nn.Module, epoch: int) -> str | None:
        """Keep the weights after `epoch` epochs as epoch-N.pt and delete the one `keep_last` epochs
        older. Returns the file's name, or None when no file is kept (keep_last 0, or not rank 0)."""
        keep = self.config.train.keep_last
        if not keep or not self.dist.is_main:
            return None
        name = f"epoch-{epoch}.pt"
        save_atomic(make_checkpoint(model, self.config.features, self.tokenizer), self.exp_dir / name)
        (self.exp_dir / f"epoch-{epoch - keep}.pt").unlink(missing_ok=True)
        return name

    def restore(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler) -> Restored | None:
        """Load last.pt into the model, optimizer, scaler and this rank's RNGs (every rank reads it).
        None when there is no last.pt: a new run."""
        if not self.last.exists():
            return None
        checkpoint = read_checkpoint(self.last)
        saved = checkpoint["train_state"]
        if len(saved["rng"]) != self.dist.world_size:
            raise ConfigError(f"{self.last}: written by {len(saved['rng'])} process(es); resume it with the same "
                              f"number, not {self.dist.world_size} (each rank's place in the epoch depends on it)")
        model.load_state_dict(checkpoint["model_state_dict"])
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        _set_rng_state(saved["rng"][self.dist.rank])
        return Restored(TrainState(**saved["state"]), saved["log_lines"])


def load_initial_weights(path: str | Path, model: torch.nn.Module, tokenizer: CharTokenizer,
                         config: RunConfig) -> None:
    """Start a new run from the weights of checkpoint `path` (train.init_from; its optimizer state,
    if any, is not used). ConfigError when its vocabulary or network sizes differ from this run's."""
    checkpoint = read_checkpoint(path)
    if list(checkpoint["vocab"]) != list(tokenizer.vocab):
        raise ConfigError(f"train.init_from {path}: its vocabulary differs from this run's")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in checkpoint["model_state_dict"].items()}
    if ours != theirs:
        raise ConfigError(f"train.init_from {path}: its network ({checkpoint['model_config']}) does not "
                          f"match model: {to_dict(config)['model']}")
    model.load_state_dict(checkpoint["model_state_dict"])


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
