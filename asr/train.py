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
      run.lock        the process id of the run using the folder: a second run into it is refused (asr.lock)

Every `log_every` steps a line goes to metrics.jsonl with the means over those steps
(loss per character, gradient norm) and the audio seconds trained per second of wall
time; on a terminal a progress bar shows them, otherwise (output to a log file) the
same figures are printed as one plain line, as are the dev WER/CER after each evaluation.

The loop is a row of small functions over explicit objects, icefall-style: `run` builds
them as locals (the model and its optimizer as an `Optimization`, the manifests and
sampler as `TrainData`, a `Checkpointer` for last.pt/best.pt/epoch-N.pt
(asr.checkpointer), a `MetricsLogger` for metrics.jsonl, TensorBoard and progress lines
(asr.metrics_logger)) and passes them to `get_lr` (pure schedule), `compute_loss`,
`optimizer_step`, `train_one_epoch` and `validate`. The config is checked in full
(`check_config`, then the data: enough for one step) before anything is written. Killing the process at
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
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from asr.checkpoint import LoadedModel
from asr.checkpointer import Checkpointer, TrainState, load_initial_weights
from asr.config import ConfigError, to_dict
from asr.configs import RunConfig, TrainConfig
from asr.data.augment import ensure_rir_bank, join_groups
from asr.data.dataset import UtteranceDataset, collate, defer_stop_signals, loading
from asr.data.manifest import Utterance, read_manifest, read_mix
from asr.data.sampler import DurationBatchSampler
from asr.decode import GreedyDecoder
from asr.distributed import Distributed
from asr.errors import AsrError
from asr.evaluate import decode_utterances, score
from asr.features import SpecAugmentConfig, spec_augment
from asr.lock import FolderInUse, lock_folder
from asr.metrics_logger import MetricsLogger
from asr.model import CTCModel
from asr.plot import plot_runs
from asr.precision import Precision, pick_device, pick_precision
from asr.text import CharTokenizer
from asr.threads import set_threads


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


@dataclass(frozen=True)
class Optimization:
    """What an optimizer step works on."""

    model: CTCModel  # the weights: what checkpoints save
    train_model: torch.nn.Module  # what the loss runs through: `model`, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler  # float16 loss scaling; a no-op otherwise
    precision: Precision
    device: torch.device


@dataclass(frozen=True)
class TrainData:
    """The run's utterances and the order they come in."""

    train: list[Utterance]
    dev: list[Utterance]  # empty: no dev set
    sampler: DurationBatchSampler  # this rank's batches of `train`
    steps_per_epoch: int
    rir_bank: str | None  # room impulse responses, when reverberation is on


@dataclass
class StopRequest:
    """A SIGINT/SIGTERM received: save and stop at the next step boundary (`_stop_on_signals`)."""

    signum: int | None = None

    def agreed(self, dist: Distributed, device: torch.device) -> bool:
        """Whether a stop signal reached any rank (a collective call: every rank at the same point)."""
        signalled, = dist.sum([float(self.signum is not None)], device)
        if signalled and self.signum is None:
            self.signum = signal.SIGTERM  # another rank's (torchrun passes SIGTERM on to every rank)
        return signalled > 0


MAX_NON_FINITE_IN_A_ROW = 20  # float16's loss scale needs at most ~16 halvings to recover from 2**16


class TrainingError(AsrError):
    """Training cannot go on: too many steps in a row with a non-finite loss or gradient."""


@dataclass
class NonFiniteSteps:
    """Steps skipped because their loss or gradient was NaN or infinite: in all, and in a row."""

    total: int = 0
    in_a_row: int = 0

    def count(self, finite: bool, step: int, logger: MetricsLogger) -> None:
        """Record one step; log a skipped one, and raise TrainingError after MAX_NON_FINITE_IN_A_ROW in a row."""
        if finite:
            self.in_a_row = 0
            return
        self.total += 1
        self.in_a_row += 1
        logger.log({"step": step, "skipped": "non-finite loss or gradient", "skipped_total": self.total})
        logger.echo(f"step {step}: loss or gradient not finite, step skipped ({self.total} so far)")
        if self.in_a_row >= MAX_NON_FINITE_IN_A_ROW:
            raise TrainingError(f"{self.in_a_row} steps in a row (up to step {step}) had a non-finite loss or "
                                "gradient; lower train.lr or check the data (last.pt holds the last good state)")


@dataclass(frozen=True)
class TrainResult:
    """How `run` ended."""

    model: CTCModel
    state: TrainState
    steps_per_epoch: int
    stop_signal: int | None  # the signal that stopped it early (last.pt saved), or None
    is_main: bool  # rank 0 (the one that prints a summary)


def check_config(config: RunConfig) -> None:
    """ConfigError for a config no run can start from (the data is checked by `load_data`)."""
    if not config.train_manifest:
        raise ConfigError("no training manifest: set train_manifest in the YAML or pass --train-manifest")
    config.train.check()
    config.model.check()


def build_optimization(config: RunConfig, dist: Distributed, device: torch.device) -> Optimization:
    """The model (the same initial weights on every rank), its DDP wrapper, AdamW and the scaler."""
    torch.manual_seed(config.train.seed)
    model = CTCModel(config.model).to(device)
    train_model = dist.wrap(model, device)
    torch.manual_seed(config.train.seed + dist.rank)  # but each rank its own dropout and masks
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    precision = pick_precision(config.train.precision, device)
    scaler = torch.amp.GradScaler("cuda", enabled=precision.needs_scaler)
    return Optimization(model, train_model, optimizer, scaler, precision, device)


def load_data(config: RunConfig, dist: Distributed, exp_dir: Path) -> TrainData:
    """Read the manifests, plan the batches and check there are enough for one optimizer step;
    only then render the room-impulse bank (rank 0 first), the one file this writes."""
    train = read_mix(config.train_manifest)
    dev = read_manifest(config.dev_manifest) if config.dev_manifest else []
    durations = [u.duration for u in train]
    augment, cfg = config.augment, config.train
    joins = functools.partial(join_groups, durations, augment, cfg.seed) if augment.join_prob else None
    sampler = DurationBatchSampler(durations, cfg.max_batch_seconds, seed=cfg.seed, sortagrad=cfg.sortagrad,
                                   rank=dist.rank, world_size=dist.world_size, groups=joins,
                                   gap_seconds=augment.join_pause[1])
    steps_per_epoch = len(sampler.batches(0)) // cfg.grad_accum
    if steps_per_epoch == 0:
        raise ConfigError(f"{config.train_manifest}: too little data for one optimizer step of "
                          f"{cfg.grad_accum} batch(es) x {dist.world_size} process(es)")
    rir_bank = None
    if augment.reverb_prob:  # rendered once, then kept with the run
        rir_bank = str(augment.rir_bank or exp_dir / "rir_bank.npz")
        if dist.is_main:
            ensure_rir_bank(rir_bank, augment, seed=cfg.seed)
        dist.barrier()
    return TrainData(train, dev, sampler, steps_per_epoch, rir_bank)


def make_loader(config: RunConfig, data: TrainData, tokenizer: CharTokenizer,
                epoch: int) -> torch.utils.data.DataLoader:
    """This rank's batches of `epoch` (from the sampler's position), featurized in worker processes."""
    cfg = config.train
    dataset = UtteranceDataset(data.train, config.features, tokenizer, speeds=cfg.speeds, seed=cfg.seed, epoch=epoch,
                               augment=config.augment, rir_bank=data.rir_bank)
    # A private generator keeps the DataLoader from drawing on the global RNG,
    # so resuming mid-epoch leaves the global RNG stream exactly as saved.
    return torch.utils.data.DataLoader(dataset, batch_sampler=data.sampler, collate_fn=collate,
                                       num_workers=cfg.num_workers, persistent_workers=False,
                                       worker_init_fn=defer_stop_signals,
                                       prefetch_factor=4 if cfg.num_workers else None,
                                       generator=torch.Generator().manual_seed(cfg.seed))


def optimizer_step(opt: Optimization, batches: list[dict], lr: float, config: RunConfig) -> tuple[float, float]:
    """One update from this rank's `batches` (grad_accum of them). Returns (loss, gradient norm).
    A non-finite gradient norm (NaN or inf, from a NaN or inf loss) means the weights were left
    as they were: the caller counts it (`NonFiniteSteps`)."""
    for group in opt.optimizer.param_groups:
        group["lr"] = lr
    opt.optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for i, batch in enumerate(batches):
        # Gradients add up locally; only the step's last backward all-reduces them over ranks.
        with _no_sync(opt.train_model, i < len(batches) - 1):
            with opt.precision.autocast():
                loss = compute_loss(opt.train_model, batch, opt.device, config.specaug) / len(batches)
            opt.scaler.scale(loss).backward()
        total += loss.item()
    opt.scaler.unscale_(opt.optimizer)
    grad_norm = float(torch.nn.utils.clip_grad_norm_(opt.model.parameters(), config.train.grad_clip))
    # The gradients are all-reduced, so every rank sees the same norm and skips the same steps
    # (a NaN loss on one rank makes the summed gradient NaN on all).
    if math.isfinite(grad_norm):
        opt.scaler.step(opt.optimizer)
    opt.scaler.update()  # float16: a non-finite step lowers the loss scale; a no-op otherwise
    return total, grad_norm


@dataclass(frozen=True)
class TrainingRun:
    """The objects of one run that every step reaches, built by `run`: config, rank, and who
    writes what. Not the model or the data: those are passed where they are used."""

    config: RunConfig  # resolved
    tokenizer: CharTokenizer
    dist: Distributed
    checkpointer: Checkpointer
    logger: MetricsLogger
    stop: StopRequest
    total_steps: int
    non_finite: NonFiniteSteps = dataclasses.field(default_factory=NonFiniteSteps)


def train_one_epoch(training: TrainingRun, opt: Optimization, data: TrainData, state: TrainState) -> bool:
    """Run the rest of the current epoch. Returns False when max_steps or a stop signal ended it early."""
    cfg = training.config.train
    data.sampler.set_epoch(state.epoch, start_batch=state.batch_in_epoch)
    opt.model.train()
    progress = tqdm(total=len(data.sampler) // cfg.grad_accum, desc=f"epoch {state.epoch}", dynamic_ncols=True,
                    disable=training.logger.plain or not training.dist.is_main)
    loader = make_loader(training.config, data, training.tokenizer, state.epoch)
    with progress, loading(loader) as loaded:
        for batches in _groups(loaded, cfg.grad_accum):  # an incomplete last group is dropped
            if cfg.max_steps and state.step >= cfg.max_steps:
                return False
            lr = get_lr(state.step, cfg, training.total_steps)
            loss, grad_norm = optimizer_step(opt, batches, lr, training.config)
            state.step += 1
            state.batch_in_epoch += len(batches)
            finite = math.isfinite(loss) and math.isfinite(grad_norm)
            training.non_finite.count(finite, state.step, training.logger)
            frames = sum(b["feature_lengths"].sum().item() for b in batches)
            if finite:  # a skipped step has its own metrics.jsonl line, and stays out of the means
                training.logger.add_step(loss, grad_norm, frames * training.config.features.hop_ms / 1000)
            window = training.logger.window
            progress.update()
            if window.steps:
                progress.set_postfix(loss=f"{window.loss / window.steps:.3f}", lr=f"{lr:.2e}")
            if state.step % cfg.log_every == 0:
                training.logger.log_window(state.step, state.epoch, lr, training.dist, opt.device)
            if cfg.eval_every and state.step % cfg.eval_every == 0:
                validate(training, opt, data.dev, state)
            if state.step % cfg.checkpoint_every == 0:
                _save_last(training, opt, state)
            if training.stop.agreed(training.dist, opt.device):
                return False
    state.epoch += 1
    state.batch_in_epoch = 0
    return True


def validate(training: TrainingRun, opt: Optimization, dev: list[Utterance], state: TrainState) -> None:
    """Greedy-decode the dev set, log WER/CER, redraw curves.png, and keep best.pt by dev WER.
    Rank 0 does this while the other ranks wait."""
    started = time.perf_counter()
    logger = training.logger
    if dev and training.dist.is_main:
        loaded = LoadedModel(opt.model, training.config.features, training.tokenizer)
        hyps = decode_utterances(loaded, dev, GreedyDecoder(training.tokenizer), device=opt.device,
                                 num_workers=training.config.train.num_workers)
        summary, _ = score(dev, hyps)
        logger.log({"step": state.step, "epoch": state.epoch, "dev_wer": summary["wer"], "dev_cer": summary["cer"]})
        logger.echo(f"step {state.step}  epoch {state.epoch}  dev WER {summary['wer']:.2%}  CER {summary['cer']:.2%}")
        if summary["wer"] < state.best_wer:
            state.best_wer = summary["wer"]
            training.checkpointer.save_best(opt.model)
    if training.dist.is_main and logger.lines:
        plot_runs([logger.path.parent], logger.path.parent / "curves.png")
    training.dist.barrier()
    logger.pause(time.perf_counter() - started)  # audio s/s counts training time only


def run(config: RunConfig, exp_dir: str | Path) -> TrainResult:
    """Train (or resume) the run in `exp_dir`: check everything, build the run's objects, train."""
    if not str(exp_dir).strip():  # Path("") is the current folder
        raise ConfigError("the experiment folder is empty ''; name one (--exp-dir)")
    exp_dir = Path(exp_dir)
    tokenizer = CharTokenizer()
    config = resolve(config, tokenizer)  # the caller's config is left as it is
    check_config(config)
    threads = set_threads(config.train.threads, "train.threads")
    dist = Distributed.from_env()
    device = pick_device(config.train.device, dist.local_rank)
    owns_process_group = dist.join(device)
    opt = build_optimization(config, dist, device)
    data = load_data(config, dist, exp_dir)
    total_steps = config.train.epochs * data.steps_per_epoch
    if config.train.max_steps:
        total_steps = min(total_steps, config.train.max_steps)
    with _exp_dir_lock(exp_dir, dist):  # one run at a time in exp_dir
        training = TrainingRun(config, tokenizer, dist, Checkpointer(exp_dir, config, tokenizer, dist),
                               MetricsLogger(exp_dir, dist.is_main), StopRequest(), total_steps)
        state = TrainState()
        try:
            with _stop_on_signals(training.stop, training.logger):
                state = _start(training, opt)
                training.logger.echo(f"model: {opt.model.num_parameters() / 1e6:.2f}M parameters, device {device}, "
                                     f"{opt.precision.name} ({opt.precision.reason}), {threads} thread(s), "
                                     f"{dist.world_size} process(es), {data.steps_per_epoch} steps/epoch")
                _train(training, opt, data, state)
        finally:
            training.logger.close()
            if owns_process_group:
                dist.leave()
    return TrainResult(opt.model, state, data.steps_per_epoch, training.stop.signum, dist.is_main)


@contextlib.contextmanager
def _exp_dir_lock(exp_dir: Path, dist: Distributed):
    """Rank 0 holds exp_dir's lock (asr.lock) for the run; every rank learns if it could not, and raises the same
    FolderInUse, so that no rank waits in a collective for one that left."""
    with contextlib.ExitStack() as stack:
        refusal = ""
        if dist.is_main:
            try:
                stack.enter_context(lock_folder(exp_dir))
            except FolderInUse as err:
                refusal = str(err)
        refusal = dist.gather(refusal)[0]
        if refusal:
            raise FolderInUse(refusal)
        yield


def _start(training: TrainingRun, opt: Optimization) -> TrainState:
    """Resume from last.pt, or start a new run (from train.init_from's weights if given); write config.yaml."""
    config, logger = training.config, training.logger
    restored = training.checkpointer.restore(opt.model, opt.optimizer, opt.scaler)
    if restored is not None:
        state = restored.state
        logger.resume(restored.log_lines)
        logger.echo(f"resumed from {training.checkpointer.last} at step {state.step}")
    else:
        state = TrainState()
        logger.start_new()
        if config.train.init_from:
            load_initial_weights(config.train.init_from, opt.model, training.tokenizer, config)
            logger.echo(f"starting from the weights of {config.train.init_from}")
    logger.open_tensorboard(state.step)
    if training.dist.is_main:
        (training.checkpointer.exp_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    return state


def _train(training: TrainingRun, opt: Optimization, data: TrainData, state: TrainState) -> None:
    """Run epochs until done, max_steps or a stop signal; last.pt is saved at the end either way."""
    while state.epoch < training.config.train.epochs and not training.stop.agreed(training.dist, opt.device):
        if not train_one_epoch(training, opt, data, state):
            break
        validate(training, opt, data.dev, state)
        kept = training.checkpointer.save_epoch(opt.model, state.epoch)  # before last.pt: a resume never skips one
        if kept:
            training.logger.log({"step": state.step, "epoch": state.epoch, "checkpoint": kept})
        _save_last(training, opt, state)
    stopped = training.stop.signum is not None
    _save_last(training, opt, state)
    if stopped:
        training.logger.echo(f"stopped by {signal.Signals(training.stop.signum).name} at step {state.step}: "
                        f"saved {training.checkpointer.last}; run the same command to resume")


def _save_last(training: TrainingRun, opt: Optimization, state: TrainState) -> None:
    training.checkpointer.save_last(opt.model, opt.optimizer, opt.scaler, state, training.logger.lines)


@contextlib.contextmanager
def _stop_on_signals(stop: StopRequest, logger: MetricsLogger):
    """While training, SIGINT and SIGTERM ask for a save and a stop at the next step boundary;
    a second one stops at once (KeyboardInterrupt). Only the main thread can set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        if stop.signum is not None:
            raise KeyboardInterrupt
        stop.signum = signum
        logger.echo(f"{signal.Signals(signum).name}: stopping after this step and saving last.pt "
                    "(Ctrl-C again stops at once, without saving)")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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
