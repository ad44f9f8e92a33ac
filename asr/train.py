"""Training: `asr train` reads a RunConfig and writes an experiment folder.

    exp_dir/
      config.yaml     the fully resolved RunConfig of this run
      last.pt         newest checkpoint, with train_state for exact resume
      best.pt         checkpoint with the best dev WER so far (no train_state)
      epoch-N.pt      weights after N epochs, the newest `keep_last` of them (for `asr average`)
      metrics.jsonl   one line per logged step / dev evaluation / epoch checkpoint
      curves.png      loss, lr and dev WER/CER against step, redrawn at each evaluation
      tensorboard/    the same scalars for TensorBoard, when `tensorboard` is installed
      rir_bank.npz    room impulse responses for reverberation (augment.reverb_prob > 0), rendered once

Every `log_every` steps a line goes to metrics.jsonl with the means over those steps
(loss per character, gradient norm) and the audio seconds trained per second of wall
time; on a terminal a progress bar shows them, otherwise (output to a log file) the
same figures are printed as one plain line, as are the dev WER/CER after each evaluation.

The loop is a row of small functions: `get_lr` (pure schedule), `compute_loss`,
`optimizer_step`, `train_one_epoch`, `validate` and `run`. Killing the process at
any moment and running the same command again continues from last.pt: the model,
optimizer, step, sampler position and RNG states are restored, so the resumed run
ends with the same weights as an uninterrupted one. SIGINT (Ctrl-C) or SIGTERM
(`kill`, a job scheduler) lose nothing: the run finishes its step, writes last.pt
and stops (a second Ctrl-C stops at once, without saving).

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
import dataclasses
import functools
import json
import math
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import yaml
from tqdm import tqdm

from asr.atomic import atomic_write
from asr.checkpoint import LoadedModel, make_checkpoint, read_checkpoint, save_atomic
from asr.config import ConfigError, to_dict
from asr.data.augment import AugmentConfig, ensure_rir_bank, join_groups
from asr.data.dataset import UtteranceDataset, collate, defer_stop_signals
from asr.data.manifest import read_manifest, read_mix
from asr.data.sampler import DurationBatchSampler
from asr.decode import GreedyDecoder
from asr.distributed import Distributed
from asr.evaluate import decode_utterances, score
from asr.features import FeatureConfig, SpecAugmentConfig, spec_augment
from asr.model import CTCModel, ModelConfig
from asr.plot import plot_runs
from asr.precision import pick_precision
from asr.text import CharTokenizer
from asr.threads import set_threads


@dataclass
class TrainConfig:
    """Optimization and bookkeeping. The LR warms up linearly for `warmup_steps`,
    then follows a cosine down to `lr * final_lr_ratio` at the last step."""

    epochs: int = 30  # passes over the training manifest
    max_batch_seconds: float = 50.0  # padded audio seconds per batch
    lr: float = 2e-3  # peak learning rate (AdamW), reached after warmup_steps
    warmup_steps: int = 300  # optimizer steps of linear warmup
    final_lr_ratio: float = 0.05  # the cosine ends at lr x this
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    # The loss is per character: 0.2 clips as 5.0 did on the per-utterance loss used before,
    # at speechocean762's 29 characters per utterance.
    grad_clip: float = 0.2  # clip the global gradient norm to this
    sortagrad: bool = True  # epoch 0 from short to long utterances
    speeds: tuple[float, ...] = (1.0,)  # speed perturbation factors, e.g. (0.9, 1.0, 1.1)
    seed: int = 0  # model initialization, batch order, SpecAugment and speed draws
    log_every: int = 10  # steps between metrics.jsonl lines
    checkpoint_every: int = 200  # steps between last.pt writes (also written every epoch)
    eval_every: int = 0  # steps between dev evaluations; 0 = at the end of each epoch
    max_steps: int = 0  # stop after this many steps (0 = run all epochs)
    num_workers: int = 1  # DataLoader processes computing features
    threads: int | None = None  # torch intra-op threads; None: half the cores (asr.threads)
    device: str = "auto"  # "auto" | "cpu" | "cuda" (under torchrun: GPU LOCAL_RANK)
    # What the forward pass computes in (asr.precision); weights and checkpoints stay float32.
    precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: CUDA float16, BF16 CPU bfloat16
    grad_accum: int = 1  # batches per optimizer step in each process; global batch = grad_accum x processes
    keep_last: int = 0  # end-of-epoch checkpoints epoch-N.pt to keep, for `asr average`; 0 = none
    init_from: str = ""  # checkpoint whose weights start a new run (fresh optimizer and schedule); "" = random


@dataclass
class RunConfig:
    """Everything one training run depends on; saved as exp_dir/config.yaml."""

    train_manifest: str = ""  # JSONL manifest to train on (required); a mix: "a.jsonl*2, b.jsonl" (read_mix)
    dev_manifest: str = ""  # JSONL manifest whose greedy WER picks best.pt; "": no dev set
    features: FeatureConfig = field(default_factory=FeatureConfig)
    specaug: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def resolve(config: RunConfig, tokenizer: CharTokenizer) -> RunConfig:
    """A copy of `config` with the sizes that follow from the others filled in: the model's input
    mel bins from the features, its output classes from the tokenizer. What a run saves and uses."""
    model = dataclasses.replace(config.model, n_mels=config.features.n_mels, vocab_size=len(tokenizer))
    return dataclasses.replace(config, model=model)


def get_lr(step: int, config: TrainConfig, total_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, cosine decay."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
    floor = config.lr * config.final_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def compute_loss(model: CTCModel, batch: dict, device: torch.device, specaug: SpecAugmentConfig | None) -> torch.Tensor:
    """CTC loss of a batch per target character (SpecAugment applied when `specaug` is given).

    Per character, not per utterance: an utterance's CTC loss grows with what it has to
    spell out, so a per-utterance mean moves with bucket length and corpus (LibriSpeech's
    utterances are 6x longer than speechocean762's), and so does what grad_clip means.
    Not per output frame either: that would move with the frame rate (`subsample`), the
    speaking rate and the silence, frames that cost almost nothing once the model has
    learnt blanks. Nats per character are comparable across batches, configs and corpora.
    """
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
    return loss / max(1, int(batch["target_lengths"].sum()))


@dataclass
class TrainState:
    step: int = 0  # optimizer steps taken
    epoch: int = 0  # current epoch
    batch_in_epoch: int = 0  # batches of `epoch` already consumed
    best_wer: float = float("inf")


@dataclass
class LogWindow:
    """Sums over the steps since the last log line; the line holds their means."""

    steps: int = 0
    loss: float = 0.0
    grad_norm: float = 0.0
    audio_seconds: float = 0.0  # of training audio
    start: float = field(default_factory=time.perf_counter)  # validation time is added back: see `validate`


class Trainer:
    """Holds the objects of one run; the loop itself is in `train_one_epoch`."""

    def __init__(self, config: RunConfig, exp_dir: str | Path):
        self.tokenizer = CharTokenizer()
        self.config = config = resolve(config, self.tokenizer)  # the caller's config is left as it is
        self.exp_dir = Path(exp_dir)
        self.threads = set_threads(config.train.threads, "train.threads")
        self.dist = Distributed.from_env()
        self.device = _pick_device(config.train.device, self.dist.local_rank)
        self.precision = pick_precision(config.train.precision, self.device)
        self.owns_process_group = self.dist.join(self.device)
        if config.train.grad_accum < 1:
            raise ConfigError(f"train.grad_accum must be at least 1, got {config.train.grad_accum}")
        torch.manual_seed(config.train.seed)  # the same initial weights on every rank
        self.model = CTCModel(config.model).to(self.device)
        self.train_model = self.dist.wrap(self.model, self.device)  # what the loss runs through
        torch.manual_seed(config.train.seed + self.dist.rank)  # but each rank its own dropout and masks
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.train.lr,
                                           weight_decay=config.train.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision.needs_scaler)
        self.train_utts = read_mix(config.train_manifest)
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
        self.stop_signal: int | None = None  # set by SIGINT/SIGTERM: save and stop at the next step boundary
        self.window = LogWindow()
        self.started = time.perf_counter()
        self.log_lines = 0  # lines in metrics.jsonl, saved in last.pt: a resume drops the ones after it
        self.plain_progress = not sys.stderr.isatty()  # a log file gets lines, a terminal a progress bar
        self.tensorboard = None  # a SummaryWriter once `open_tensorboard` found tensorboard installed

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
                                           worker_init_fn=defer_stop_signals,
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
            "log_lines": self.log_lines,
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
        if self.dist.is_main:
            self.log_lines = _truncate_log(self.exp_dir / "metrics.jsonl", saved.get("log_lines"), self.state.step)
        return True

    def start_from(self, path: str | Path) -> None:
        """Start a new run from the weights of checkpoint `path` (its optimizer state, if any, is not
        used). Raises ConfigError when its vocabulary or network sizes differ from this run's."""
        checkpoint = read_checkpoint(path)
        if list(checkpoint["vocab"]) != list(self.tokenizer.vocab):
            raise ConfigError(f"train.init_from {path}: its vocabulary differs from this run's")
        ours = {k: tuple(v.shape) for k, v in self.model.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in checkpoint["model_state_dict"].items()}
        if ours != theirs:
            raise ConfigError(f"train.init_from {path}: its network ({checkpoint['model_config']}) does not "
                              f"match model: {to_dict(self.config)['model']}")
        self.model.load_state_dict(checkpoint["model_state_dict"])

    def open_tensorboard(self) -> None:
        """Write TensorBoard scalars to exp_dir/tensorboard (rank 0), if tensorboard is installed.
        After a resume, TensorBoard hides the events of the steps that are done again."""
        if not self.dist.is_main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the optional extra `asr[tensorboard]` is not installed
            return
        self.tensorboard = SummaryWriter(self.exp_dir / "tensorboard", purge_step=self.state.step + 1)

    def log(self, record: dict) -> None:
        """Append `record` to metrics.jsonl and its numbers to TensorBoard (rank 0)."""
        if not self.dist.is_main:
            return
        with open(self.exp_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.log_lines += 1
        if self.tensorboard is not None:
            for key, value in record.items():
                if key not in ("step", "epoch", "elapsed_s") and isinstance(value, (int, float)):
                    tag = f"dev/{key.removeprefix('dev_')}" if key.startswith("dev_") else f"train/{key}"
                    self.tensorboard.add_scalar(tag, value, record["step"])

    def say(self, message: str) -> None:
        """Print a line (rank 0), above the progress bar if there is one; flushed, for log files."""
        if self.dist.is_main:
            tqdm.write(message, file=sys.stdout)
            sys.stdout.flush()

    def should_stop(self) -> bool:
        """Whether a stop signal reached any rank (a collective call: every rank at the same point)."""
        signalled, = self.dist.sum([float(self.stop_signal is not None)], self.device)
        if signalled and self.stop_signal is None:
            self.stop_signal = signal.SIGTERM  # another rank's (torchrun passes SIGTERM on to every rank)
        return signalled > 0


def optimizer_step(trainer: Trainer, batches: list[dict], lr: float) -> tuple[float, float]:
    """One update from this rank's `batches` (grad_accum of them). Returns (loss, gradient norm)."""
    for group in trainer.optimizer.param_groups:
        group["lr"] = lr
    trainer.optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for i, batch in enumerate(batches):
        # Gradients add up locally; only the step's last backward all-reduces them over ranks.
        with _no_sync(trainer.train_model, i < len(batches) - 1):
            with trainer.precision.autocast():
                loss = compute_loss(trainer.train_model, batch, trainer.device, trainer.config.specaug) / len(batches)
            trainer.scaler.scale(loss).backward()
        total += loss.item()
    trainer.scaler.unscale_(trainer.optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), trainer.config.train.grad_clip)
    trainer.scaler.step(trainer.optimizer)  # skips the step if gradients are inf/NaN
    trainer.scaler.update()
    return total, float(grad_norm)


def train_one_epoch(trainer: Trainer) -> bool:
    """Run the rest of the current epoch. Returns False when max_steps or a stop signal ended it early."""
    cfg, state = trainer.config.train, trainer.state
    trainer.sampler.set_epoch(state.epoch, start_batch=state.batch_in_epoch)
    trainer.model.train()
    progress = tqdm(total=len(trainer.sampler) // cfg.grad_accum, desc=f"epoch {state.epoch}", dynamic_ncols=True,
                    disable=trainer.plain_progress or not trainer.dist.is_main)
    with progress:
        for batches in _groups(trainer.loader(), cfg.grad_accum):  # an incomplete last group is dropped
            if cfg.max_steps and state.step >= cfg.max_steps:
                return False
            lr = get_lr(state.step, cfg, trainer.total_steps)
            loss, grad_norm = optimizer_step(trainer, batches, lr)
            state.step += 1
            state.batch_in_epoch += len(batches)
            window = trainer.window
            window.steps += 1
            window.loss += loss
            window.grad_norm += grad_norm
            frames = sum(b["feature_lengths"].sum().item() for b in batches)
            window.audio_seconds += frames * trainer.config.features.hop_ms / 1000
            progress.update()
            progress.set_postfix(loss=f"{window.loss / window.steps:.3f}", lr=f"{lr:.2e}")
            if state.step % cfg.log_every == 0:
                log_window(trainer, lr)
            if cfg.eval_every and state.step % cfg.eval_every == 0:
                validate(trainer)
            if state.step % cfg.checkpoint_every == 0:
                trainer.save()
            if trainer.should_stop():
                return False
    state.epoch += 1
    state.batch_in_epoch = 0
    return True


def log_window(trainer: Trainer, lr: float) -> None:
    """Log the means of the steps since the last line (over all ranks) and start a new window."""
    window, state = trainer.window, trainer.state
    loss, grad_norm, audio = trainer.dist.sum([window.loss, window.grad_norm, window.audio_seconds], trainer.device)
    steps = window.steps * trainer.dist.world_size
    speed = audio / (time.perf_counter() - window.start)
    elapsed = time.perf_counter() - trainer.started
    trainer.log({"step": state.step, "epoch": state.epoch, "lr": lr, "loss": round(loss / steps, 4),
                 "grad_norm": round(grad_norm / steps, 3), "audio_sec_per_sec": round(speed, 2),
                 "elapsed_s": round(elapsed, 1)})
    if trainer.plain_progress:
        trainer.say(f"step {state.step}  epoch {state.epoch}  loss {loss / steps:.3f}  lr {lr:.2e}  "
                    f"{speed:.1f} audio-s/s  elapsed {_clock(elapsed)}")
    trainer.window = LogWindow()


def validate(trainer: Trainer) -> None:
    """Greedy-decode the dev set, log WER/CER, redraw curves.png, and keep best.pt by dev WER.
    Rank 0 does this while the other ranks wait."""
    started = time.perf_counter()
    if trainer.dev_utts and trainer.dist.is_main:
        model = LoadedModel(trainer.model, trainer.config.features, trainer.tokenizer)
        hyps = decode_utterances(model, trainer.dev_utts, GreedyDecoder(trainer.tokenizer), device=trainer.device,
                                 num_workers=trainer.config.train.num_workers)
        summary, _ = score(trainer.dev_utts, hyps)
        state = trainer.state
        trainer.log({"step": state.step, "epoch": state.epoch, "dev_wer": summary["wer"], "dev_cer": summary["cer"]})
        trainer.say(f"step {state.step}  epoch {state.epoch}  dev WER {summary['wer']:.2%}  CER {summary['cer']:.2%}")
        if summary["wer"] < state.best_wer:
            state.best_wer = summary["wer"]
            save_atomic(make_checkpoint(trainer.model, trainer.config.features, trainer.tokenizer),
                        trainer.exp_dir / "best.pt")
    if trainer.dist.is_main and trainer.log_lines:
        plot_runs([trainer.exp_dir], trainer.exp_dir / "curves.png")
    trainer.dist.barrier()
    trainer.window.start += time.perf_counter() - started  # audio s/s counts training time only


def run(config: RunConfig, exp_dir: str | Path) -> Trainer:
    """Train (or resume) the run in `exp_dir`. Returns the finished Trainer."""
    exp_dir = Path(exp_dir)
    trainer = Trainer(config, exp_dir)  # checks the config before anything is written
    exp_dir.mkdir(parents=True, exist_ok=True)
    try:
        with _stop_on_signals(trainer):
            _train(trainer, exp_dir)
    finally:
        if trainer.tensorboard is not None:
            trainer.tensorboard.close()
        if trainer.owns_process_group:
            trainer.dist.leave()
    return trainer


def _train(trainer: Trainer, exp_dir: Path) -> None:
    """Resume if there is a last.pt, then run epochs until done, max_steps or a stop signal."""
    config = trainer.config
    if trainer.restore():
        trainer.say(f"resumed from {exp_dir / 'last.pt'} at step {trainer.state.step}")
    else:
        if trainer.dist.is_main:
            (exp_dir / "metrics.jsonl").unlink(missing_ok=True)  # no last.pt: a new run, a new log
        if config.train.init_from:
            trainer.start_from(config.train.init_from)
            trainer.say(f"starting from the weights of {config.train.init_from}")
    trainer.open_tensorboard()
    if trainer.dist.is_main:
        (exp_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    trainer.say(f"model: {trainer.model.num_parameters() / 1e6:.2f}M parameters, device {trainer.device}, "
                f"{trainer.precision.name} ({trainer.precision.reason}), {trainer.threads} thread(s), "
                f"{trainer.dist.world_size} process(es), "
                f"{trainer.steps_per_epoch} steps/epoch")
    while trainer.state.epoch < config.train.epochs and not trainer.should_stop():
        if not train_one_epoch(trainer):
            break
        validate(trainer)
        trainer.save_epoch()  # before last.pt: a resume from last.pt never skips an epoch file
        trainer.save()
    stopped = trainer.stop_signal is not None
    trainer.save()
    if stopped:
        trainer.say(f"stopped by {signal.Signals(trainer.stop_signal).name} at step {trainer.state.step}: "
                    f"saved {exp_dir / 'last.pt'}; run the same command to resume")


@contextlib.contextmanager
def _stop_on_signals(trainer: Trainer):
    """While training, SIGINT and SIGTERM ask for a save and a stop at the next step boundary;
    a second one stops at once (KeyboardInterrupt). Only the main thread can set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        if trainer.stop_signal is not None:
            raise KeyboardInterrupt
        trainer.stop_signal = signum
        trainer.say(f"{signal.Signals(signum).name}: stopping after this step and saving last.pt "
                    "(Ctrl-C again stops at once, without saving)")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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


def _truncate_log(path: Path, keep: int | None, step: int) -> int:
    """Drop the log lines written after the checkpoint we resumed from (they will be written
    again): keep the first `keep`, the count the checkpoint saved. Checkpoints from before
    that count (keep None) keep the lines up to their `step`. Returns the lines kept."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    if keep is None:
        complete = [line for line in lines if line.endswith("}")]  # a kill can tear the last line
        lines = [line for line in complete if json.loads(line).get("step", 0) <= step]
    lines = lines[:keep]
    with atomic_write(path) as f:
        f.writelines(line + "\n" for line in lines)
    return len(lines)


def _clock(seconds: float) -> str:
    """H:MM:SS"""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
