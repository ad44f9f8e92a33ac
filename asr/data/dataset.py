"""Dataset and collation: manifest rows -> padded feature batches.

A batch is a dict:
    features         (batch, frames, mels)  float32, zero-padded log-mel
    feature_lengths  (batch,)               int64, valid frames per utterance
    targets          (batch, labels)        int64, zero-padded token ids
    target_lengths   (batch,)               int64, valid labels per utterance
    ids              list[str]              utterance ids, in batch order ("a+b" for joined utterances)

Features are computed on the fly in DataLoader workers (see
benchmarks/features_cache.py for why no cache): only the current batches' audio
is ever in memory. That also makes speed perturbation free: a training dataset
given `speeds` plays each utterance at a factor drawn from them (Ko et al. 2015:
tempo and pitch change together, as sox `speed` does). The draw depends only on
(seed, epoch, index), so a resumed run sees exactly the same audio. So do the
augmentations of asr.data.augment (noise, reverberation, telephone, codecs, gain),
applied to the raw audio before log-mel, and the joining of several utterances
into one example: an item index may be a tuple of utterance indices (the batch
sampler's groups), whose audio is joined with pauses and whose texts are joined
with spaces.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from asr.audio import SAMPLE_RATE, AudioError, load_audio, resample
from asr.data.augment import JOIN, AugmentConfig, Augmenter, join
from asr.data.manifest import Utterance
from asr.features import FeatureConfig, LogMel
from asr.text import CharTokenizer


class UtteranceDataset(torch.utils.data.Dataset):
    """Item i (or a tuple of utterance indices) -> (id, features (frames, mels), token ids (labels,))."""

    def __init__(self, utterances: list[Utterance], features: FeatureConfig, tokenizer: CharTokenizer,
                 speeds: tuple[float, ...] = (1.0,), seed: int = 0, epoch: int = 0,
                 augment: AugmentConfig | None = None, rir_bank: str | None = None, skip_unreadable: bool = False):
        self.utterances = utterances
        self.skip_unreadable = skip_unreadable  # an unreadable file's item is (id, None, error): see collate_readable
        self.logmel = LogMel(features)
        self.tokenizer = tokenizer
        self.speeds = tuple(speeds)
        self.seed = seed
        self.epoch = epoch
        self.augment = augment or AugmentConfig()
        self.augmenter = (Augmenter(self.augment, self._load, len(utterances), rir_bank)
                          if self.augment.enabled else None)

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int | tuple[int, ...]):
        group = tuple(index) if isinstance(index, (tuple, list)) else (index,)
        try:
            return self._item(group)
        except AudioError as err:
            if not self.skip_unreadable:
                raise
            return "+".join(self.utterances[i].id for i in group), None, str(err)

    def _item(self, group: tuple[int, ...]):
        pieces = [self._perturbed(i) for i in group]
        if len(pieces) == 1:
            audio = pieces[0]  # (samples,)
        else:
            audio = join(pieces, np.random.default_rng([self.seed, self.epoch, group[0], JOIN]), self.augment)
        if self.augmenter is not None:
            audio = self.augmenter(audio, self.seed, self.epoch, group[0])
        with torch.no_grad():
            feats = self.logmel(torch.from_numpy(audio))  # (frames, mels)
        text = " ".join(self.utterances[i].text for i in group)
        tokens = torch.tensor(self.tokenizer.encode(text), dtype=torch.long)  # (labels,)
        return "+".join(self.utterances[i].id for i in group), feats, tokens

    def _load(self, index: int) -> np.ndarray:
        utt = self.utterances[index]
        return load_audio(utt.audio_path, utt.offset, utt.duration)  # (samples,)

    def _perturbed(self, index: int) -> np.ndarray:
        audio = self._load(index)
        if len(self.speeds) > 1:
            speed = np.random.default_rng([self.seed, self.epoch, index]).choice(self.speeds)
            # Read the samples as if recorded at SAMPLE_RATE * speed, then bring them back to SAMPLE_RATE.
            audio = resample(audio, int(round(SAMPLE_RATE * speed)))
        return audio


WORKER_STOP_GRACE = 60  # seconds a DataLoader worker keeps serving after a SIGTERM


def defer_stop_signals(_worker_id: int) -> None:
    """DataLoader `worker_init_fn`: only the main process decides how training stops (it
    finishes its step, saves, and shuts its workers down), so a worker must outlive the
    signals that reach the whole process group -- Ctrl-C (SIGINT), or a SIGTERM from
    `pkill`, `kill -TERM -PGID` or a job scheduler -- or that step's batch would be lost.
    SIGINT is ignored. SIGTERM is also how a hung worker gets stopped, so it is only
    deferred: the worker ends WORKER_STOP_GRACE seconds later (SIGALRM) unless it was shut
    down normally before."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: signal.alarm(WORKER_STOP_GRACE))


@contextlib.contextmanager
def loading(loader: torch.utils.data.DataLoader) -> Iterator[Iterator[dict]]:
    """`with loading(loader) as batches:` iterate `loader`, whose workers are shut down the moment
    the block ends, by an error too. Without it an error (a missing audio file) keeps the loader's
    iterator alive in its traceback until the interpreter exits, which then stops the workers with
    SIGTERM, which `defer_stop_signals` defers: the `error:` line came WORKER_STOP_GRACE s early."""
    iterator = iter(loader)
    try:
        yield iterator
    finally:
        shutdown = getattr(iterator, "_shutdown_workers", None)  # worker processes only (num_workers > 0)
        if shutdown is not None:
            shutdown()


def collate(items) -> dict:
    """Pad a list of dataset items into the batch dict described in the module docstring."""
    ids, feats, tokens = zip(*items)
    return {
        "features": pad_sequence(feats, batch_first=True),
        "feature_lengths": torch.tensor([f.shape[0] for f in feats]),
        "targets": pad_sequence(tokens, batch_first=True),
        "target_lengths": torch.tensor([t.shape[0] for t in tokens]),
        "ids": list(ids),
    }


def collate_readable(items) -> tuple[dict | None, list[str]]:
    """`collate` of the items whose audio could be read (None if none could), and the errors of the
    others: the collate_fn of a dataset with `skip_unreadable` (evaluation: score what can be scored)."""
    errors = [error for _, feats, error in items if feats is None]
    readable = [item for item in items if item[1] is not None]
    return (collate(readable) if readable else None), errors
