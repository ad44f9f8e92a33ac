"""Log-mel features and SpecAugment.

Dimension legend used across the toolkit:
    batch    utterances in a batch
    samples  audio samples at 16 kHz
    frames   feature frames, one every `hop_ms` (10 ms by default)
    mels     mel bins (80 by default)

Normalization is per-utterance CMVN: each mel bin of an utterance is shifted to
zero mean and scaled to unit variance over that utterance's frames (the variance
floored, `_EPS_VAR`, for very short inputs). No statistics file travels with a
model, and training, evaluation and transcription run the same code; why it was
chosen over global CMVN: docs/design.md.
"""

from __future__ import annotations

import torch
import torchaudio.transforms as T

from asr.audio import SAMPLE_RATE
from asr.configs import FeatureConfig, SpecAugmentConfig

_EPS_LOG = 1e-10  # floor for the power spectrum before the log (-230 dB)
_EPS_VAR = 1e-5  # floor for the per-utterance variance


class LogMel(torch.nn.Module):
    """Waveform `(samples,)` -> normalized log-mel `(frames, mels)`."""

    def __init__(self, config: FeatureConfig):
        super().__init__()
        self.config = config
        self.mel = T.MelSpectrogram(
            sample_rate=SAMPLE_RATE,
            n_fft=config.n_fft,
            win_length=config.win_length,
            hop_length=config.hop_length,
            n_mels=config.n_mels,
            power=2.0,
            center=True,
            pad_mode="reflect",
            norm="slaney",
            mel_scale="slaney",
        )

    def power_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mel power spectrogram `(samples,)` -> `(mels, frames)`, as librosa computes it."""
        return self.mel(waveform)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        log_mel = self.power_mel(waveform).clamp(min=_EPS_LOG).log().T  # (frames, mels)
        mean = log_mel.mean(dim=0, keepdim=True)  # (1, mels)
        var = log_mel.var(dim=0, unbiased=False, keepdim=True).clamp(min=_EPS_VAR)
        return (log_mel - mean) / var.sqrt()  # (frames, mels)


def spec_augment(
    features: torch.Tensor, lengths: torch.Tensor, config: SpecAugmentConfig, generator=None
) -> torch.Tensor:
    """Mask random mel bands and frame spans of each utterance.

    features: `(batch, frames, mels)`, lengths: `(batch,)` valid frames per utterance.
    Returns a masked copy; randomness comes from `generator` (or torch's global RNG).
    """
    batch, frames, mels = features.shape
    keep = torch.ones(batch, frames, mels, dtype=torch.bool)

    def spans(count: int, max_width: torch.Tensor, limit: torch.Tensor) -> tuple:
        # (batch, count) start/end of each mask, widths uniform in [0, max_width]
        u = torch.rand(batch, count, 2, generator=generator)
        width = (u[..., 0] * (max_width.unsqueeze(1) + 1)).floor()
        start = (u[..., 1] * (limit.unsqueeze(1) - width).clamp(min=0)).floor()
        return start, start + width

    if config.freq_masks:
        full = torch.full((batch,), mels, dtype=torch.float)
        width = torch.full((batch,), float(min(config.freq_width, mels)))
        start, end = spans(config.freq_masks, width, full)
        bins = torch.arange(mels).view(1, 1, mels)  # (1, 1, mels)
        masked = ((bins >= start.unsqueeze(-1)) & (bins < end.unsqueeze(-1))).any(1)  # (batch, mels)
        keep &= ~masked.unsqueeze(1)
    if config.time_masks:
        limit = lengths.float()
        width = torch.minimum(limit * config.max_time_fraction, torch.tensor(float(config.time_width))).floor()
        start, end = spans(config.time_masks, width, limit)
        steps = torch.arange(frames).view(1, 1, frames)  # (1, 1, frames)
        masked = ((steps >= start.unsqueeze(-1)) & (steps < end.unsqueeze(-1))).any(1)  # (batch, frames)
        keep &= ~masked.unsqueeze(2)
    return features * keep.to(features.device)
