"""The adaptation job: read DATA, train from the base model, write a model used like any other.

    result = adapt(AdaptJob(data="my_voice/", out="me.pt"), AdaptConfig())
    # me.pt (+ me.lm.bin, me.lexicon.txt beside it): `asr transcribe --model me.pt`, `asr evaluate`,
    # `asr serve --model me.pt` decode with it as the base model decodes (beam + LM + lexicon)

The job, in order:
  1. read DATA (asr.adapt.data): a folder of audio + .txt, or a manifest; refuse unusable DATA
     in one line; hold out a seeded part (`held_out`) for early stopping and weight tuning;
  2. compute every example's features once, at each speed factor, and keep them in memory;
     optionally sample `replay_ratio` x DATA's duration of the base's training data (`--replay`)
     so the model keeps what it knew;
  3. train (`train_steps`): AdamW on the layers above the `freeze_layers` lowest BiLSTM
     layers, warmup + cosine (asr.train.get_lr), SpecAugment (asr.train.compute_loss),
     in the precision asr.precision picks; a step budget from the audio's length
     (`epochs` passes, within [min_steps, max_steps]) and optionally a wall-clock budget;
     the held-out CTC loss every `eval_every` steps keeps the best weights, and stops the
     run after `patience` evaluations without a gain;
  4. write the model (asr.adapt.vocabulary): the base's decoding options, its LM beside the
     new model, its lexicon plus the words of DATA and of `--text`, and, with at least
     `tune_min_utterances` held out, the LM weight and word score re-tuned on them.

A stop request (Ctrl-C in the CLI; a cancelled or timed-out job in `asr serve`) ends
training after the current step; the best weights so far are written all the same.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from asr.adapt.data import (
    AdaptDataError,
    Example,
    check_data,
    draw_batches,
    featurize,
    fixed_batches,
    read_data,
    sample_replay,
    split_held_out,
)
from asr.adapt.vocabulary import tune_on_held_out, words_of, write_decoding_files
from asr.checkpoint import LoadedModel, load_model, make_checkpoint, save_atomic, stored_decoding
from asr.config import ConfigError
from asr.configs import AdaptConfig
from asr.data.manifest import read_mix
from asr.features import SpecAugmentConfig
from asr.precision import pick_precision
from asr.train import TrainConfig, compute_loss, get_lr


@dataclass
class AdaptJob:
    """What to adapt and where the result goes (the inputs; AdaptConfig says how)."""

    data: str  # folder of audio + .txt transcripts, or a JSONL manifest
    out: str  # the adapted checkpoint to write (its LM and lexicon go beside it)
    base: str = ""  # checkpoint to start from; "": the bundled model
    text: list[str] = field(default_factory=list)  # text files whose words join the lexicon
    replay: str = ""  # manifest (or mix, asr.data.manifest.read_mix) of the base's training data


@dataclass
class Progress:
    """What a progress display or a job poller sees, after each step."""

    step: int = 0
    steps: int = 0  # the current plan (a wall-clock budget can shorten it)
    loss: float = 0.0  # training loss of the last step (per character)
    held_out_loss: float | None = None  # latest held-out loss
    best_held_out_loss: float | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None
    phase: str = "preparing"  # preparing | training | writing | done


def plan_steps(train_seconds: float, config: AdaptConfig) -> int:
    """Steps of a run over `train_seconds` of audio: `steps`, or `epochs` passes within [min_steps, max_steps]."""
    if config.steps:
        return config.steps
    per_epoch = math.ceil(train_seconds / config.max_batch_seconds)
    return int(min(config.max_steps, max(config.min_steps, round(config.epochs * per_epoch))))


def adapt(job: AdaptJob, config: AdaptConfig, on_progress: Callable[[Progress], None] = lambda _: None,
          stop: threading.Event | None = None, log: Callable[[str], None] = print) -> dict:
    """Run the job (module docstring). Returns a summary: {"out", "utterances", "train_seconds",
    "held_out", "steps", "stopped_early", "interrupted", "loss_before", "loss_after" (training
    set, speed 1.0, no SpecAugment), "held_out_loss_before"/"_after", "new_words", "decoding",
    "seconds"}. Raises AdaptDataError / ConfigError / CheckpointError in one line."""
    started = time.perf_counter()
    stop = stop or threading.Event()
    _check_config(config)
    from asr.pretrained import default_model_path

    base_path = job.base or str(default_model_path())
    loaded = load_model(base_path, config.device)
    utterances = read_data(job.data)
    check_data(utterances, loaded.tokenizer)
    extra_words = set()
    for path in job.text:
        try:
            extra_words |= words_of(Path(path).read_text(encoding="utf-8").splitlines())
        except OSError as err:
            raise AdaptDataError(f"{path}: cannot read --text ({err.strerror})") from None
    train_utts, held_utts = split_held_out(utterances, config.held_out, config.seed)
    log(f"adapting {Path(base_path).name} on {len(train_utts)} utterances "
        f"({sum(u.duration for u in train_utts) / 60:.1f} min), {len(held_utts)} held out")
    train = featurize(train_utts, loaded.features, loaded.tokenizer, config.speeds)
    held = featurize(held_utts, loaded.features, loaded.tokenizer)
    replay = []
    if job.replay:
        pool = read_mix(job.replay)
        seconds = config.replay_ratio * sum(u.duration for u in train_utts)
        replay = featurize(sample_replay(pool, seconds, config.seed), loaded.features, loaded.tokenizer)
        log(f"replaying {len(replay)} utterances of {job.replay}")

    model = loaded.model
    summary = {"loss_before": mean_loss(model, train, config), "held_out_loss_before": mean_loss(model, held, config)}
    run = train_steps(loaded, train + replay, held, config, on_progress, stop, started)
    model.load_state_dict(run["best_state"])
    model.eval()
    summary.update(loss_after=mean_loss(model, train, config), held_out_loss_after=mean_loss(model, held, config))

    on_progress(Progress(step=run["steps"], steps=run["steps"], phase="writing",
                         elapsed_s=time.perf_counter() - started))
    out = Path(job.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    words = words_of(u.text for u in utterances) | extra_words
    stored, new_words = write_decoding_files(loaded.decoding, out, words)
    options = stored_decoding(stored, out)
    tuned = False
    if (len(held_utts) >= config.tune_min_utterances and options.decoder == "beam" and options.lm
            and not stop.is_set()):
        best, _ = tune_on_held_out(LoadedModel(model, loaded.features, loaded.tokenizer, options), held_utts, options)
        stored.update(lm_weight=best.lm_weight, word_score=best.word_score)
        tuned = True
    checkpoint = make_checkpoint(model, loaded.features, loaded.tokenizer, decoding=stored)
    summary.update(out=str(out), base=str(base_path), utterances=len(utterances),
                   train_seconds=round(sum(u.duration for u in train_utts), 1), held_out=len(held_utts),
                   steps=run["steps"], best_step=run["best_step"], stopped_early=run["stopped_early"],
                   interrupted=stop.is_set(), new_words=new_words, tuned=tuned,
                   decoding={k: v for k, v in stored.items() if v is not None and v != float("-inf")},
                   seconds=round(time.perf_counter() - started, 1))
    checkpoint["adaptation"] = {k: v for k, v in summary.items() if k != "decoding"}
    save_atomic(checkpoint, out)
    on_progress(Progress(step=run["steps"], steps=run["steps"], phase="done", elapsed_s=summary["seconds"]))
    return summary


def train_steps(loaded: LoadedModel, train: list[Example], held: list[Example], config: AdaptConfig,
                on_progress: Callable[[Progress], None], stop: threading.Event, started: float) -> dict:
    """The training loop. Returns {"best_state" (state dict of the best weights), "steps" (taken),
    "best_step", "stopped_early"}. Best: lowest held-out loss, or the last step without held-out data."""
    model, device = loaded.model, torch.device(config.device)
    precision = pick_precision(config.precision, device, flag="--precision")
    trainable = freeze(model, config.freeze_layers)
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    planned = plan_steps(sum(e.seconds for e in train), config)
    schedule = TrainConfig(lr=config.lr, warmup_steps=max(1, round(config.warmup * planned)), final_lr_ratio=0.1)
    specaug = SpecAugmentConfig() if config.specaug else None
    eval_every = config.eval_every or max(1, planned // 12)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)

    progress = Progress(steps=planned, phase="training")
    best_loss = mean_loss(model, held, config) if held else None
    best_state, best_step, evaluations_without_gain = copy.deepcopy(model.state_dict()), 0, 0
    progress.held_out_loss = progress.best_held_out_loss = best_loss
    train_started, step, stopped_early = time.perf_counter(), 0, False
    batches: list[dict] = []
    while step < planned and not stop.is_set():
        if not batches:
            batches = draw_batches(train, config.max_batch_seconds, rng)
        batch = batches.pop()
        for group in optimizer.param_groups:
            group["lr"] = get_lr(step, schedule, planned)
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            loss = compute_loss(model, batch, device, specaug)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, TrainConfig.grad_clip)
        optimizer.step()
        step += 1
        progress.step, progress.loss = step, loss.item()
        if config.minutes:  # a wall-clock budget: plan as many steps as fit in what is left
            per_step = (time.perf_counter() - train_started) / step
            left = config.minutes * 60 - (time.perf_counter() - started)
            planned = max(step, min(planned, step + int(left / per_step)))
            progress.steps = planned
        if held and (step % eval_every == 0 or step == planned):
            held_loss = mean_loss(model, held, config)
            progress.held_out_loss = held_loss
            if held_loss < best_loss:
                best_loss, best_state, best_step, evaluations_without_gain = (
                    held_loss, copy.deepcopy(model.state_dict()), step, 0)
                progress.best_held_out_loss = best_loss
            else:
                evaluations_without_gain += 1
                if evaluations_without_gain >= config.patience:
                    stopped_early = True
                    break
        elapsed = time.perf_counter() - train_started
        progress.elapsed_s = time.perf_counter() - started
        progress.eta_s = elapsed / step * (planned - step)
        on_progress(progress)
    if not held:
        best_state, best_step = copy.deepcopy(model.state_dict()), step
    model.eval()
    return {"best_state": best_state, "steps": step, "best_step": best_step, "stopped_early": stopped_early}


def freeze(model: torch.nn.Module, layers: int) -> list[torch.nn.Parameter]:
    """Keep the front end and the `layers` lowest BiLSTM layers fixed. Returns the parameters that train."""
    trainable = []
    for name, param in model.named_parameters():
        frozen = name.startswith("front_end.") or any(
            name.startswith("lstm.") and _lstm_layer(name) == layer for layer in range(layers))
        param.requires_grad_(not frozen)
        if not frozen:
            trainable.append(param)
    return trainable


def _lstm_layer(name: str) -> int:
    """The layer of an nn.LSTM parameter: 'lstm.weight_ih_l2_reverse' -> 2."""
    return int(name.split("_l", 1)[1].split("_")[0])


@torch.no_grad()
def mean_loss(model: torch.nn.Module, examples: list[Example], config: AdaptConfig) -> float | None:
    """CTC loss per character over `examples` at speed 1.0, eval mode, no SpecAugment (None if none)."""
    if not examples:
        return None
    model.eval()
    total = chars = 0.0
    for batch in fixed_batches(examples, config.max_batch_seconds):
        n = int(batch["target_lengths"].sum())
        total += float(compute_loss(model, batch, torch.device(config.device), None)) * n
        chars += n
    return round(total / chars, 4)


def _check_config(config: AdaptConfig) -> None:
    if config.lr <= 0 or config.steps < 0 or config.minutes < 0 or config.freeze_layers < 0:
        raise ConfigError("--lr must be positive; --steps, --minutes and --freeze-layers must not be negative")
    if not 0 <= config.held_out < 0.5 or not config.speeds or min(config.speeds) <= 0:
        raise ConfigError("--held-out must be in [0, 0.5) and --speeds positive factors")
