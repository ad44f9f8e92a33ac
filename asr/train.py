"""Training: `asr train` reads a RunConfig and writes an experiment folder.

    exp_dir/
      config.yaml     the fully resolved RunConfig of this run
      last.pt         newest checkpoint, with train_state for exact resume
      best.pt         checkpoint with the best dev WER so far (no train_state)
      epoch-N.pt      weights after N epochs, the newest `keep_last` of them (for `asr average`)
      metrics.jsonl   one line per logged step / dev evaluation / epoch checkpoint
      rir_bank.npz    room impulse responses for reverberation (augment.reverb_prob > 0), rendered once

The loop is a row of small functions: `get_lr` (pure schedule), `compute_loss`,
`optimizer_step`, `train_one_epoch`, `validate` and `run`. Killing the process at
any moment and running the same command again continues from last.pt: the model,
optimizer, step, sampler position and RNG states are restored, so the resumed run
ends with the same weights as an uninterrupted one.

Several processes (`torchrun --nproc_per_node=N -m asr train ...`, see
asr.distributed) train one model with DistributedDataParallel: rank r takes every
N-th batch of the epoch's list, gradients are averaged over ranks, and rank 0
alone evaluates and writes files. An optimizer step sees `grad_accum` batches per
rank, and each batch's loss counts 1 / grad_accum, so N ranks x 1 batch and
1 process x N accumulated batches make the same update from the same batches.
Resuming needs the same number of processes (the sampler position depends on it).
"""

from __future__ import annotations

import contextlib
import functools
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
from asr.config import ConfigError, to_dict
from asr.data.augment import AugmentConfig, ensure_rir_bank, join_groups
from asr.data.dataset import UtteranceDataset, collate
from asr.data.manifest import read_manifest
from asr.data.sampler import DurationBatchSampler
from asr.decode import GreedyDecoder
from asr.distributed import Distributed
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
    device: str = "auto"  # "auto" | "cpu" | "cuda" (under torchrun: GPU LOCAL_RANK)
    amp: bool = True  # float16 autocast when on CUDA
    grad_accum: int = 1  # batches per optimizer step in each process; global batch = grad_accum x processes
    keep_last: int = 0  # end-of-epoch checkpoints epoch-N.pt to keep, for `asr average`; 0 = none


@dataclass
class RunConfig:
    """Everything one training run depends on; saved as exp_dir/config.yaml."""

    train_manifest: str = ""
    dev_manifest: str = ""
    features: FeatureConfig = field(default_factory=FeatureConfig)
    specaug: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
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
        self.dist = Distributed.from_env()
        self.device = _pick_device(config.train.device, self.dist.local_rank)
        self.owns_process_group = self.dist.join(self.device)
        self.tokenizer = CharTokenizer()
        config.model.vocab_size = len(self.tokenizer)
        config.model.n_mels = config.features.n_mels
        if config.train.grad_accum < 1:
            raise ConfigError(f"train.grad_accum must be at least 1, got {config.train.grad_accum}")
        torch.manual_seed(config.train.seed)  # the same initial weights on every rank
        self.model = CTCModel(config.model).to(self.device)
        self.train_model = self.dist.wrap(self.model, self.device)  # what the loss runs through
        torch.manual_seed(config.train.seed + self.dist.rank)  # but each rank its own dropout and masks
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.train.lr,
                                           weight_decay=config.train.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.train_utts = read_manifest(config.train_manifest)
        self.dev_utts = read_manifest(config.dev_manifest) if config.dev_manifest else []
        durations = [u.duration for u in self.train_utts]
        augment = config.augment
        joins = functools.partial(join_groups, durations, augment, config.train.seed) if augment.join_prob else None
        self.sampler = DurationBatchSampler(durations, config.train.max_batch_seconds,
                                            seed=config.train.seed, sortagrad=config.train.sortagrad,
                                            rank=self.dist.rank, world_size=self.dist.world_size,
                                            groups=joins, gap_seconds=augment.join_pause[1])
        self.rir_bank = None
        if augment.reverb_prob:  # rendered once (rank 0 first), then kept with the run
            self.rir_bank = str(augment.rir_bank or self.exp_dir / "rir_bank.npz")
            if self.dist.is_main:
                ensure_rir_bank(self.rir_bank, augment, seed=config.train.seed)
            self.dist.barrier()
        self.steps_per_epoch = len(self.sampler.batches(0)) // config.train.grad_accum
        if self.steps_per_epoch == 0:
            raise ConfigError(f"{config.train_manifest}: too little data for one optimizer step of "
                              f"{config.train.grad_accum} batch(es) x {self.dist.world_size} process(es)")
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
                                   speeds=cfg.speeds, seed=cfg.seed, epoch=self.state.epoch,
                                   augment=self.config.augment, rir_bank=self.rir_bank)
        workers = self.config.train.num_workers
        # A private generator keeps the DataLoader from drawing on the global RNG,
        # so resuming mid-epoch leaves the global RNG stream exactly as saved.
        return torch.utils.data.DataLoader(dataset, batch_sampler=self.sampler, collate_fn=collate,
                                           num_workers=workers, persistent_workers=False,
                                           prefetch_factor=4 if workers else None,
                                           generator=torch.Generator().manual_seed(self.config.train.seed))

    def save(self) -> None:
        """Write last.pt (rank 0) with every rank's RNG state, so that each resumes its own stream.
        Called on all ranks."""
        rng = self.dist.gather(_rng_state())
        if not self.dist.is_main:
            return
        train_state = {
            "state": vars(self.state).copy(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,  # one per rank
            "run_config": to_dict(self.config),
        }
        save_atomic(make_checkpoint(self.model, self.config.features, self.tokenizer, train_state=train_state),
                    self.exp_dir / "last.pt")

    def save_epoch(self) -> None:
        """Keep the weights after `state.epoch` epochs as epoch-N.pt (rank 0), log it, and
        delete the one `keep_last` epochs older."""
        keep = self.config.train.keep_last
        if not keep or not self.dist.is_main:
            return
        name = f"epoch-{self.state.epoch}.pt"
        save_atomic(make_checkpoint(self.model, self.config.features, self.tokenizer), self.exp_dir / name)
        self.log({"step": self.state.step, "epoch": self.state.epoch, "checkpoint": name})
        (self.exp_dir / f"epoch-{self.state.epoch - keep}.pt").unlink(missing_ok=True)

    def restore(self) -> bool:
        """Load exp_dir/last.pt if present (every rank reads it). Returns whether training resumed."""
        path = self.exp_dir / "last.pt"
        if not path.exists():
            return False
        checkpoint = read_checkpoint(path)
        saved = checkpoint["train_state"]
        rng = saved["rng"] if isinstance(saved["rng"], list) else [saved["rng"]]  # older files: one state
        if len(rng) != self.dist.world_size:
            raise ConfigError(f"{path}: written by {len(rng)} process(es); resume it with the same number, "
                              f"not {self.dist.world_size} (each rank's place in the epoch depends on it)")
        self.model.load_state_dict(checkpoint["model_state_dict"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scaler.load_state_dict(saved["scaler"])
        self.state = TrainState(**saved["state"])
        _set_rng_state(rng[self.dist.rank])
        return True

    def log(self, record: dict) -> None:
        if self.dist.is_main:
            with open(self.exp_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def say(self, message: str) -> None:
        if self.dist.is_main:
            tqdm.write(message)


def optimizer_step(trainer: Trainer, batches: list[dict], lr: float) -> tuple[float, float]:
    """One update from this rank's `batches` (grad_accum of them). Returns (loss, gradient norm)."""
    for group in trainer.optimizer.param_groups:
        group["lr"] = lr
    trainer.optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for i, batch in enumerate(batches):
        # Gradients add up locally; only the step's last backward all-reduces them over ranks.
        with _no_sync(trainer.train_model, i < len(batches) - 1):
            with torch.autocast("cuda", dtype=torch.float16, enabled=trainer.use_amp):
                loss = compute_loss(trainer.train_model, batch, trainer.device, trainer.config.specaug) / len(batches)
            trainer.scaler.scale(loss).backward()
        total += loss.item()
    trainer.scaler.unscale_(trainer.optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), trainer.config.train.grad_clip)
    trainer.scaler.step(trainer.optimizer)  # skips the step if gradients are inf/NaN
    trainer.scaler.update()
    return total, float(grad_norm)


def train_one_epoch(trainer: Trainer) -> bool:
    """Run the rest of the current epoch. Returns False when max_steps stopped it early."""
    cfg, state = trainer.config.train, trainer.state
    trainer.sampler.set_epoch(state.epoch, start_batch=state.batch_in_epoch)
    trainer.model.train()
    progress = tqdm(total=len(trainer.sampler) // cfg.grad_accum, desc=f"epoch {state.epoch}", dynamic_ncols=True,
                    disable=None if trainer.dist.is_main else True)
    window_audio, window_start = 0.0, time.perf_counter()
    with progress:
        for batches in _groups(trainer.loader(), cfg.grad_accum):  # an incomplete last group is dropped
            if cfg.max_steps and state.step >= cfg.max_steps:
                return False
            lr = get_lr(state.step, cfg, trainer.total_steps)
            loss, grad_norm = optimizer_step(trainer, batches, lr)
            state.step += 1
            state.batch_in_epoch += len(batches)
            frames = sum(b["feature_lengths"].sum().item() for b in batches)
            window_audio += frames * trainer.config.features.hop_ms / 1000
            progress.update()
            progress.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}")
            if state.step % cfg.log_every == 0:
                loss_sum, audio = trainer.dist.sum([loss, window_audio], trainer.device)  # over all ranks
                elapsed = time.perf_counter() - window_start
                trainer.log({"step": state.step, "epoch": state.epoch, "lr": lr,
                             "loss": round(loss_sum / trainer.dist.world_size, 4), "grad_norm": round(grad_norm, 3),
                             "audio_sec_per_sec": round(audio / elapsed, 2)})
                window_audio, window_start = 0.0, time.perf_counter()
            if cfg.eval_every and state.step % cfg.eval_every == 0:
                validate(trainer)
            if state.step % cfg.checkpoint_every == 0:
                trainer.save()
    state.epoch += 1
    state.batch_in_epoch = 0
    return True


def validate(trainer: Trainer) -> None:
    """Greedy-decode the dev set, log WER/CER, and keep best.pt by dev WER.
    Rank 0 does this while the other ranks wait."""
    if trainer.dev_utts and trainer.dist.is_main:
        hyps = decode_utterances(trainer.model, trainer.config.features, trainer.dev_utts,
                                 GreedyDecoder(trainer.tokenizer), device=trainer.device,
                                 num_workers=trainer.config.train.num_workers)
        summary, _ = score(trainer.dev_utts, hyps)
        trainer.model.train()
        state = trainer.state
        trainer.log({"step": state.step, "epoch": state.epoch, "dev_wer": summary["wer"], "dev_cer": summary["cer"]})
        trainer.say(f"step {state.step}: dev WER {summary['wer']:.2%} CER {summary['cer']:.2%}")
        if summary["wer"] < state.best_wer:
            state.best_wer = summary["wer"]
            save_atomic(make_checkpoint(trainer.model, trainer.config.features, trainer.tokenizer),
                        trainer.exp_dir / "best.pt")
    trainer.dist.barrier()


def run(config: RunConfig, exp_dir: str | Path) -> Trainer:
    """Train (or resume) the run in `exp_dir`. Returns the finished Trainer."""
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(config, exp_dir)
    try:
        if trainer.restore():
            if trainer.dist.is_main:
                _truncate_log(exp_dir / "metrics.jsonl", trainer.state.step)
            trainer.say(f"resumed from {exp_dir / 'last.pt'} at step {trainer.state.step}")
        if trainer.dist.is_main:
            (exp_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
        trainer.say(f"model: {trainer.model.num_parameters() / 1e6:.2f}M parameters, device {trainer.device}, "
                    f"{trainer.dist.world_size} process(es), {trainer.steps_per_epoch} steps/epoch")
        while trainer.state.epoch < config.train.epochs:
            if not train_one_epoch(trainer):
                break
            validate(trainer)
            trainer.save_epoch()  # before last.pt: a resume from last.pt never skips an epoch file
            trainer.save()
        trainer.save()
    finally:
        if trainer.owns_process_group:
            trainer.dist.leave()
    return trainer


def _pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device("cuda", local_rank) if name == "cuda" else torch.device(name)


def _groups(batches, size: int):
    """Consecutive lists of `size` batches; a shorter last list is dropped."""
    group = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []


def _no_sync(model: torch.nn.Module, skip_sync: bool):
    """DDP's no_sync() when `skip_sync` (a backward that should not all-reduce yet)."""
    is_ddp = isinstance(model, torch.nn.parallel.DistributedDataParallel)
    return model.no_sync() if skip_sync and is_ddp else contextlib.nullcontext()


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
        lines = [line for line in path.read_text().splitlines() if json.loads(line).get("step", 0) <= step]
        path.write_text("".join(line + "\n" for line in lines))
