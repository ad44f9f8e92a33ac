"""The config dataclasses of training and decoding, in one torch-free module.

Each component's config is re-exported by the module that uses it (`asr.features.FeatureConfig`,
`asr.model.ModelConfig`, `asr.train.RunConfig`, `asr.decode.DecodingOptions`, ...). They live
here, away from torch, so that `asr --help` can list every field as a flag at once: a field's
help text is its `option(default, help)` metadata (asr.config).

    RunConfig                everything one training run depends on (exp_dir/config.yaml)
      features  FeatureConfig      log-mel front end
      specaug   SpecAugmentConfig  time and frequency masks
      augment   AugmentConfig      training-audio augmentation
      model     ModelConfig        network sizes
      train     TrainConfig        optimization and bookkeeping
    DecodingOptions          greedy or beam search (+ LM); frozen
    TranscribeOptions        how long recordings are cut and batched; frozen
    AdaptConfig              how `asr adapt` fine-tunes a model on one voice
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from asr.audio import SAMPLE_RATE
from asr.config import ConfigError, option
from asr.vad import SegmentOptions

# Bounds on the beam options, so a typo is one error line rather than an out-of-memory kill.
# Lexicon-free beam search over 20 s of speech took 1.7 s and 1.2 GB at beam 1000, 29 s and
# 3.1 GB at beam 5000 (bundled model, one thread); beam 10^9 grew until the kernel killed it.
MAX_BEAM_SIZE = 2000
MAX_BEAM_THRESHOLD = 1000.0
LM_WEIGHT_RANGE = (0.0, 20.0)  # beyond 20 the LM alone decides; tuned values are 0.5-3
WORD_SCORE_RANGE = (-50.0, 50.0)


@dataclass
class FeatureConfig:
    """Log-mel front end. Defaults: 80 bins, 25 ms windows every 10 ms."""

    n_mels: int = option(80, "mel bins per frame")
    win_ms: float = option(25.0, "analysis window length")
    hop_ms: float = option(10.0, "one frame every hop_ms")
    n_fft: int = option(512, "FFT size in samples; >= window length (400 samples at 25 ms)")

    @property
    def win_length(self) -> int:
        return int(SAMPLE_RATE * self.win_ms / 1000)  # 400 samples

    @property
    def hop_length(self) -> int:
        return int(SAMPLE_RATE * self.hop_ms / 1000)  # 160 samples


@dataclass
class SpecAugmentConfig:
    """SpecAugment masks (Park et al. 2019), applied to training batches only.

    Time masks scale with each utterance's length (`max_time_fraction`) so that
    short utterances are not wiped out; features are zero-mean, so masked bins are 0.
    """

    freq_masks: int = option(2, "mel bands masked per utterance (0: none)")
    freq_width: int = option(27, "at most this many mel bins per mask")
    time_masks: int = option(2, "frame spans masked per utterance (0: none)")
    time_width: int = option(40, "at most this many frames per mask (0.4 s) ...")
    max_time_fraction: float = option(0.1, "... and at most this fraction of the utterance")

    @property
    def enabled(self) -> bool:
        return self.freq_masks > 0 or self.time_masks > 0


@dataclass
class ModelConfig:
    """Sizes of the network. `n_mels` must match FeatureConfig.n_mels; `vocab_size`
    is set from the tokenizer when the model is built."""

    n_mels: int = option(80, "input mel bins (must equal features.n_mels)")
    subsample: int = option(3, "input frames per LSTM step: 10 ms -> 30 ms steps (a power of 2 for the conv front end)")
    front_end: Literal["stack", "conv"] = option("stack", "frames -> LSTM steps: stacking, or strided 3x3 convolutions")
    conv_channels: int = option(32, "channels of each convolution of the conv front end")
    hidden_size: int = option(256, "per direction")
    num_layers: int = option(3, "stacked BiLSTM layers")
    dropout: float = option(0.1, "between LSTM layers and before the output layer")
    vocab_size: int = option(29, "output classes; set from the tokenizer when the model is built")

    @property
    def conv_layers(self) -> int:
        """Stride-2 convolutions of the conv front end: log2(subsample)."""
        return self.subsample.bit_length() - 1

    @property
    def lstm_input_size(self) -> int:
        if self.front_end == "conv":
            return self.conv_channels * -(-self.n_mels // 2 ** self.conv_layers)  # channels x ceil(mels / subsample)
        return self.n_mels * self.subsample

    def check(self) -> None:
        """ConfigError for sizes no network can be built with."""
        if self.subsample < 1:
            raise ConfigError(f"model.subsample must be at least 1, got {self.subsample}")
        if self.front_end == "conv" and (self.subsample < 2 or self.subsample & (self.subsample - 1)):
            raise ConfigError(f"model.subsample must be a power of 2 (2, 4, 8) with the conv front end, "
                              f"got {self.subsample}")
        for name in ("hidden_size", "num_layers", "conv_channels", "n_mels", "vocab_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be at least 1, got {getattr(self, name)}")


@dataclass
class AugmentConfig:
    """Probabilities (0 = off) and strength ranges of the training-audio augmentations."""

    noise_prob: float = option(0.0, "share of examples with additive noise (coloured or babble)")
    noise_snr_db: tuple[float, float] = option((5.0, 25.0), "SNR range (dB) the noise is drawn at")
    babble_share: float = option(0.5, "of the noisy examples, the share with babble rather than coloured noise")
    babble_talkers: tuple[int, int] = option((3, 6), "other training utterances summed into one babble")
    reverb_prob: float = option(0.0, "share of examples played in a simulated room")
    rt60: tuple[float, float] = option((0.2, 0.9), "seconds, of the rooms in the bank")
    rir_count: int = option(200, "rooms in the bank")
    rir_bank: str = option("", '.npz bank of impulse responses; "" = EXP_DIR/rir_bank.npz, rendered on first use')
    telephone_prob: float = option(0.0, "share of examples sent through a phone line (8 kHz, GSM or mu-law)")
    gsm_share: float = option(0.5, "of the telephone examples, the share with GSM 06.10 rather than mu-law")
    codec_prob: float = option(0.0, "share of examples coded with Opus or MP3 at a low bitrate")
    codec_levels: tuple[float, float] = option((0.9, 0.99), "libsndfile compression level")
    mp3_share: float = option(0.5, "of the codec examples, the share with MP3 rather than Opus")
    gain_prob: float = option(0.0, "share of examples with a random gain (clipped at full scale)")
    gain_db: tuple[float, float] = option((-15.0, 15.0), "gain range in dB")
    join_prob: float = option(0.0, "share of utterances that start a joined example")
    join_count: tuple[int, int] = option((2, 4), "utterances in a joined example")
    join_max_seconds: float = option(20.0, "longest joined example, pauses included")
    join_pause: tuple[float, float] = option((0.1, 0.6), "seconds between joined utterances")

    @property
    def enabled(self) -> bool:
        """Whether any per-example augmentation is on (joining is the sampler's business)."""
        return any(p > 0 for p in (self.noise_prob, self.reverb_prob, self.telephone_prob, self.codec_prob,
                                   self.gain_prob))


@dataclass
class TrainConfig:
    """Optimization and bookkeeping. The LR warms up linearly for `warmup_steps`,
    then follows a cosine down to `lr * final_lr_ratio` at the last step."""

    epochs: int = option(30, "passes over the training manifest")
    max_batch_seconds: float = option(50.0, "padded audio seconds per batch")
    lr: float = option(2e-3, "peak learning rate (AdamW), reached after warmup_steps")
    warmup_steps: int = option(300, "optimizer steps of linear warmup")
    final_lr_ratio: float = option(0.05, "the cosine ends at lr x this")
    weight_decay: float = option(0.01, "AdamW decoupled weight decay")
    # The loss is per character: 0.2 clips as 5.0 did on the per-utterance loss used before,
    # at speechocean762's 29 characters per utterance.
    grad_clip: float = option(0.2, "clip the global gradient norm to this")
    sortagrad: bool = option(True, "epoch 0 from short to long utterances")
    speeds: tuple[float, ...] = option((1.0,), "speed perturbation factors, e.g. (0.9, 1.0, 1.1)")
    seed: int = option(0, "model initialization, batch order, SpecAugment and speed draws")
    log_every: int = option(10, "steps between metrics.jsonl lines")
    checkpoint_every: int = option(200, "steps between last.pt writes (also written every epoch)")
    eval_every: int = option(0, "steps between dev evaluations; 0 = at the end of each epoch")
    max_steps: int = option(0, "stop after this many steps (0 = run all epochs)")
    num_workers: int = option(1, "DataLoader processes computing features")
    threads: int | None = option(None, "torch intra-op threads; None: half the cores (asr.threads)")
    device: str = option("auto", '"auto" | "cpu" | "cuda" (under torchrun: GPU LOCAL_RANK)')
    # What the forward pass computes in (asr.precision); weights and checkpoints stay float32.
    precision: Literal["auto", "float32", "bfloat16", "float16"] = option("auto",
                                                                          "auto: CUDA float16, BF16 CPU bfloat16")
    grad_accum: int = option(1, "batches per optimizer step in each process; global batch = grad_accum x processes")
    keep_last: int = option(0, "end-of-epoch checkpoints epoch-N.pt to keep, for `asr average`; 0 = none")
    init_from: str = option("", 'checkpoint whose weights start a new run (fresh optimizer and schedule); "" = random')

    def check(self) -> None:
        """ConfigError for a value no run can use (a negative learning rate, log_every 0, a NaN)."""
        at_least = {"epochs": 1, "log_every": 1, "checkpoint_every": 1, "grad_accum": 1, "warmup_steps": 0,
                    "eval_every": 0, "max_steps": 0, "num_workers": 0, "keep_last": 0}
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ConfigError(f"train.{name} must be at least {low}, got {getattr(self, name)}")
        for name in ("lr", "max_batch_seconds", "grad_clip"):
            if not 0 < getattr(self, name) < math.inf:
                raise ConfigError(f"train.{name} must be a number above 0, got {getattr(self, name)}")
        if not 0 <= self.weight_decay < math.inf:
            raise ConfigError(f"train.weight_decay must be 0 or more, got {self.weight_decay}")
        if not 0 <= self.final_lr_ratio <= 1:
            raise ConfigError(f"train.final_lr_ratio must be between 0 and 1, got {self.final_lr_ratio}")
        if not self.speeds or not all(0 < s < math.inf for s in self.speeds):
            raise ConfigError(f"train.speeds must be factors above 0, got {self.speeds}")


@dataclass
class RunConfig:
    """Everything one training run depends on; saved as exp_dir/config.yaml."""

    train_manifest: str = option("", 'JSONL manifest to train on (required); a mix: "a.jsonl*2, b.jsonl" (read_mix)')
    dev_manifest: str = option("", 'JSONL manifest whose greedy WER picks best.pt; "": no dev set')
    features: FeatureConfig = field(default_factory=FeatureConfig)
    specaug: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class DecodingOptions:
    """How to turn log-probabilities into text. Frozen: build a new one to change it.

    Only `decoder` matters for greedy decoding; the rest configure the beam search.
    """

    decoder: Literal["greedy", "beam"] = option("greedy",
                                                "best path, or beam search (with the LM and lexicon if given)")
    beam_size: int = option(50, "hypotheses kept after each frame")
    beam_size_token: int | None = option(None, "tokens tried per frame (None: all)")
    beam_threshold: float = option(50.0, "drop hypotheses this far (log-prob) below the best")
    lm_weight: float = option(2.0, "weight of the LM's log10 probability")
    word_score: float = option(0.0, "added per word (lexicon-free: per word separator)")
    unk_score: float = option(float("-inf"), "added per out-of-lexicon word (-inf: never emit one)")
    lexicon: str | None = option(None, "flashlight lexicon file; None: lexicon-free")
    lm: str | None = option(None, "KenLM ARPA or binary file; None: no LM")

    def __post_init__(self):
        if self.decoder not in ("greedy", "beam"):
            raise ConfigError(f"unknown decoder {self.decoder!r} (choose from: greedy, beam)")
        for name in ("beam_size", "beam_size_token"):
            value = getattr(self, name)
            if value is not None and not 1 <= value <= MAX_BEAM_SIZE:
                raise ConfigError(f"{name} must be between 1 and {MAX_BEAM_SIZE}, got {value}")
        bounds = {"beam_threshold": (0.0, MAX_BEAM_THRESHOLD), "lm_weight": LM_WEIGHT_RANGE,
                  "word_score": WORD_SCORE_RANGE, "unk_score": (float("-inf"), WORD_SCORE_RANGE[1])}
        for name, (low, high) in bounds.items():
            if not low <= getattr(self, name) <= high:
                raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {getattr(self, name):g}")


@dataclass(frozen=True)
class TranscribeOptions:
    """How recordings are cut and batched. Frozen: build a new one to change it."""

    segments: SegmentOptions = field(default_factory=SegmentOptions)
    batch_segments: int = option(8, "segments per model call")
    batch_seconds: float = option(0.0, "0: batches of --batch-segments in arrival order (CPU); more: "
                                       "length-sorted batches of at most this many padded audio seconds, "
                                       "across files (the default with --device cuda: 600)")
    jobs: int = option(1, "threads detecting speech and reading segments ahead of the model")

    def __post_init__(self):
        if not 1 <= self.batch_segments <= 256:
            raise ConfigError(f"batch_segments must be between 1 and 256, got {self.batch_segments}")
        if self.batch_seconds < 0:
            raise ConfigError(f"batch_seconds must be 0 or more, got {self.batch_seconds}")
        if not 1 <= self.jobs <= 64:
            raise ConfigError(f"jobs must be between 1 and 64, got {self.jobs}")


@dataclass
class AdaptConfig:
    """How adaptation trains. The defaults were chosen by recipes/adapt/ (RESULTS.md)."""

    lr: float = option(2e-3, "peak learning rate (AdamW); 1e-3 gained less on 20 min of one voice (recipes/adapt)")
    steps: int = option(0, "optimizer steps; 0: `epochs` passes over DATA, within [min_steps, max_steps]")
    epochs: float = option(20.0, "passes over DATA when steps is 0")
    min_steps: int = option(40, "fewest steps when steps is 0 (a minute of speech is one or two batches)")
    max_steps: int = option(600, "most steps when steps is 0")
    minutes: float = option(0.0, "wall-clock budget for training; 0: none (the step budget alone)")
    warmup: float = option(0.1, "fraction of the steps warming the learning rate up")
    max_batch_seconds: float = option(40.0, "padded audio seconds per batch")
    freeze_layers: int = option(1, "lowest BiLSTM layers (and the front end) kept as they are")
    speeds: tuple[float, ...] = option((0.9, 1.0, 1.1), "speed perturbation factors, features cached for each")
    specaug: bool = option(True, "SpecAugment (the training defaults) on every step")
    held_out: float = option(0.1, "fraction of DATA held out (5+ utterances) for early stopping and tuning")
    eval_every: int = option(0, "steps between held-out evaluations; 0: about 12 over the run")
    patience: int = option(4, "held-out evaluations without a gain before stopping")
    tune_min_utterances: int = option(20, "re-tune the LM weight and word score when this many are held out")
    replay_ratio: float = option(0.5, "with --replay: seconds of replayed base data per second of DATA")
    seed: int = option(0, "held-out split, batch order, speed and SpecAugment draws")
    precision: Literal["auto", "float32", "bfloat16", "float16"] = option(
        "auto", "what training computes in (asr.precision); auto: bfloat16 on a CPU with BF16 instructions")
    device: str = option("cpu", "cpu or cuda")
