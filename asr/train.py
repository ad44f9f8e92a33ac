"""Training: `asr train` reads a RunConfig and writes an experiment folder.

    exp_dir/
      config.yaml     the fully resolved RunConfig of this run
      last.pt         newest checkpoint, with train_state for exact resume
      best.pt         checkpoint with the best dev WER so far (no train_state)
      metrics.jsonl   one line per logged step / dev evaluation

The loop is a row of small functions: `get_lr` (pure schedule), `compute_loss`,
`train_one_epoch`, `validate` and `run`. Killing the process at any moment and
running the same command again continues from last.pt: the model, optimizer,
step, sampler position and RNG states are restored, so the resumed run ends
with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from asr.checkpoint import make_checkpoint, read_checkpoint, save_atomic
from asr.config import from_dict, to_dict
from asr.data.dataset import UtteranceDataset, collate
from asr.data.manifest import read_manifest
from asr.data.sampler import DurationBatchSampler
from asr.decode import GreedyDecoder
from asr.evaluate import decode_utterances, score
from asr.features import FeatureConfig, SpecAugmentConfig, spec_augment
from asr.model import CTCModel, ModelConfig
from asr.text import CharTokenizer


@dataclass
class TrainConfig:
    """Optimization and bookkeeping. The LR warms up linearly for `warmup_steps`,
    then follows a cosine down to `lr * final_lr_ratio` at the last step."""

    epochs: int = 30
    max_batch_seconds: float = 50.0  # padded audio seconds per batch
    lr: float = 2e-3
    warmup_steps: int = 300
    final_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float = 5.0
    sortagrad: bool = True  # epoch 0 from short to long utterances
    speeds: tuple[float, ...] = (1.0,)  # speed perturbation factors, e.g. (0.9, 1.0, 1.1)
    seed: int = 0
    log_every: int = 10  # steps between metrics.jsonl lines
    checkpoint_every: int = 200  # steps between last.pt writes (also written every epoch)
    eval_every: int = 0  # steps between dev evaluations; 0 = at the end of each epoch
    max_steps: int = 0  # stop after this many steps (0 = run all epochs)
    num_workers: int = 1  # DataLoader processes computing features
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    amp: bool = True  # float16 autocast when on CUDA


@dataclass
class RunConfig:
    """Everything one training run depends on; saved as exp_dir/config.yaml."""

    train_manifest: str = ""
    dev_manifest: str = ""
    features: FeatureConfig = field(default_factory=FeatureConfig)
    specaug: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def get_lr(step: int, config: TrainConfig, total_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, cosine decay."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
    floor = config.lr * config.final_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def compute_loss(model: CTCModel, batch: dict, device: torch.device, specaug: SpecAugmentConfig | None) -> torch.Tensor:
    """Mean per-utterance CTC loss of a batch (SpecAugment applied when `specaug` is given)."""
    features = batch["features"]  # (batch, frames, mels)
    if specaug is not None and specaug.enabled:
        features = spec_augment(features, batch["feature_lengths"], specaug)
    log_probs, out_lengths = model(features.to(device), batch["feature_lengths"].to(device))
    loss = torch.nn.functional.ctc_loss(
        log_probs.transpose(0, 1),  # (out_frames, batch, vocab), as CTC expects
        batch["targets"].to(device),
        out_lengths,
        batch["target_lengths"].to(device),
        blank=0,
        reduction="sum",
        zero_infinity=True,
    )
    return loss / features.shape[0]


@dataclass
class TrainState:
    step: int = 0  # optimizer steps taken
    epoch: int = 0  # current epoch
    batch_in_epoch: int = 0  # batches of `epoch` already consumed
    best_wer: float = float("inf")


class Trainer:
    """Holds the objects of one run; the loop itself is in `train_one_epoch`."""

    def __init__(self, config: RunConfig, exp_dir: str | Path):
        self.config = config
        self.exp_dir = Path(exp_dir)
        self.device = _pick_device(config.train.device)
        self.tokenizer = CharTokenizer()
        config.model.vocab_size = len(self.tokenizer)
        config.model.n_mels = config.features.n_mels
        torch.manual_seed(config.train.seed)
        self.model = CTCModel(config.model).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.train.lr,
                                           weight_decay=config.train.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.train_utts = read_manifest(config.train_manifest)
        self.dev_utts = read_manifest(config.dev_manifest) if config.dev_manifest else []
        self.sampler = DurationBatchSampler([u.duration for u in self.train_utts], config.train.max_batch_seconds,
                                            seed=config.train.seed, sortagrad=config.train.sortagrad)
        self.steps_per_epoch = len(self.sampler.batches(0))
        self.total_steps = config.train.epochs * self.steps_per_epoch
        if config.train.max_steps:
            self.total_steps = min(self.total_steps, config.train.max_steps)
        self.state = TrainState()

    @property
    def use_amp(self) -> bool:
        return self.config.train.amp and self.device.type == "cuda"

    def loader(self) -> torch.utils.data.DataLoader:
        cfg = self.config.train
        dataset = UtteranceDataset(self.train_utts, self.config.features, self.tokenizer,
                                   speeds=cfg.speeds, seed=cfg.seed, epoch=self.state.epoch)
        workers = self.config.train.num_workers
        # A private generator keeps the DataLoader from drawing on the global RNG,
        # so resuming mid-epoch leaves the global RNG stream exactly as saved.
        return torch.utils.data.DataLoader(dataset, batch_sampler=self.sampler, collate_fn=collate,
                                           num_workers=workers, persistent_workers=False,
                                           prefetch_factor=4 if workers else None,
                                           generator=torch.Generator().manual_seed(self.config.train.seed))

    def save(self) -> None:
        train_state = {
            "state": vars(self.state).copy(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(),
            "run_config": to_dict(self.config),
        }
        save_atomic(make_checkpoint(self.model, self.config.features, self.tokenizer, train_state=train_state),
                    self.exp_dir / "last.pt")

    def restore(self) -> bool:
        """Load exp_dir/last.pt if present. Returns whether training resumed."""
        path = self.exp_dir / "last.pt"
        if not path.exists():
            return False
        checkpoint = read_checkpoint(path)
        saved = checkpoint["train_state"]
        self.model.load_state_dict(checkpoint["model_state_dict"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scaler.load_state_dict(saved["scaler"])
        self.state = TrainState(**saved["state"])
        _set_rng_state(saved["rng"])
        return True

    def log(self, record: dict) -> None:
        with open(self.exp_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def train_one_epoch(trainer: Trainer) -> bool:
    """Run the rest of the current epoch. Returns False when max_steps stopped it early."""
    cfg, state, model = trainer.config.train, trainer.state, trainer.model
    trainer.sampler.set_epoch(state.epoch, start_batch=state.batch_in_epoch)
    model.train()
    progress = tqdm(trainer.loader(), total=len(trainer.sampler), desc=f"epoch {state.epoch}",
                    initial=0, dynamic_ncols=True, disable=None)
    window_audio, window_start = 0.0, time.perf_counter()
    for batch in progress:
        if cfg.max_steps and state.step >= cfg.max_steps:
            return False
        lr = get_lr(state.step, cfg, trainer.total_steps)
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast("cuda", dtype=torch.float16, enabled=trainer.use_amp):
            loss = compute_loss(model, batch, trainer.device, trainer.config.specaug)
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.scaler.scale(loss).backward()
        trainer.scaler.unscale_(trainer.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        trainer.scaler.step(trainer.optimizer)  # skips the step if gradients are inf/NaN
        trainer.scaler.update()
        state.step += 1
        state.batch_in_epoch += 1
        window_audio += batch["feature_lengths"].sum().item() * trainer.config.features.hop_ms / 1000
        progress.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}")
        if state.step % cfg.log_every == 0:
            elapsed = time.perf_counter() - window_start
            trainer.log({"step": state.step, "epoch": state.epoch, "loss": round(loss.item(), 4), "lr": lr,
                         "grad_norm": round(float(grad_norm), 3), "audio_sec_per_sec": round(window_audio / elapsed, 2)})
            window_audio, window_start = 0.0, time.perf_counter()
        if cfg.eval_every and state.step % cfg.eval_every == 0:
            validate(trainer)
        if state.step % cfg.checkpoint_every == 0:
            trainer.save()
    state.epoch += 1
    state.batch_in_epoch = 0
    return True


def validate(trainer: Trainer) -> None:
    """Greedy-decode the dev set, log WER/CER, and keep best.pt by dev WER."""
    if not trainer.dev_utts:
        return
    hyps = decode_utterances(trainer.model, trainer.config.features, trainer.dev_utts,
                             GreedyDecoder(trainer.tokenizer), device=trainer.device,
                             num_workers=trainer.config.train.num_workers)
    summary, _ = score(trainer.dev_utts, hyps)
    trainer.model.train()
    state = trainer.state
    trainer.log({"step": state.step, "epoch": state.epoch, "dev_wer": summary["wer"], "dev_cer": summary["cer"]})
    tqdm.write(f"step {state.step}: dev WER {summary['wer']:.2%} CER {summary['cer']:.2%}")
    if summary["wer"] < state.best_wer:
        state.best_wer = summary["wer"]
        save_atomic(make_checkpoint(trainer.model, trainer.config.features, trainer.tokenizer),
                    trainer.exp_dir / "best.pt")


def run(config: RunConfig, exp_dir: str | Path) -> Trainer:
    """Train (or resume) the run in `exp_dir`. Returns the finished Trainer."""
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(config, exp_dir)
    if trainer.restore():
        _truncate_log(exp_dir / "metrics.jsonl", trainer.state.step)
        tqdm.write(f"resumed from {exp_dir / 'last.pt'} at step {trainer.state.step}")
    (exp_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    tqdm.write(f"model: {trainer.model.num_parameters() / 1e6:.2f}M parameters, device {trainer.device}, "
               f"{trainer.steps_per_epoch} steps/epoch")
    while trainer.state.epoch < config.train.epochs:
        if not train_one_epoch(trainer):
            break
        validate(trainer)
        trainer.save()
    trainer.save()
    return trainer


def load_run_config(exp_dir: str | Path) -> RunConfig:
    return from_dict(RunConfig, yaml.safe_load((Path(exp_dir) / "config.yaml").read_text()))


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resumed from (they will be redone)."""
    if path.exists():
        lines = [l for l in path.read_text().splitlines() if json.loads(l).get("step", 0) <= step]
        path.write_text("".join(l + "\n" for l in lines))
