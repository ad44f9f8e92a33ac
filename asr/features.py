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

import math

import torch

from asr.audio import SAMPLE_RATE
from asr.configs import FeatureConfig, SpecAugmentConfig

_EPS_LOG = 1e-10  # floor for the power spectrum before the log (-230 dB)
_EPS_VAR = 1e-5  # floor for the per-utterance variance


def slaney_mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Triangular mel filters on the Slaney scale, area-normalized, from 0 Hz to Nyquist:
    `(n_freqs, mels)`. The computation of torchaudio's `melscale_fbanks(norm="slaney",
    mel_scale="slaney")`, step for step (so the features are bit-for-bit what they were when
    torchaudio made them), written here so that featurizing does not import torchaudio
    (about 0.1 s of every `asr transcribe`'s start)."""
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0  # linear below 1 kHz, log above
    min_log_mel = min_log_hz / f_sp
    nyquist = float(sample_rate // 2)
    m_max = min_log_mel + math.log(nyquist / min_log_hz) / logstep if nyquist >= min_log_hz else nyquist / f_sp
    mels = torch.linspace(0.0, m_max, n_mels + 2)  # (mels + 2,) band edges and centres
    f_pts = f_sp * mels
    log_part = mels >= min_log_mel
    f_pts[log_part] = min_log_hz * torch.exp(logstep * (mels[log_part] - min_log_mel))
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)  # (n_freqs,)
    f_diff = f_pts[1:] - f_pts[:-1]  # (mels + 1,)
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)  # (n_freqs, mels + 2)
    down = (-1.0 * slopes[:, :-2]) / f_diff[:-1]  # (n_freqs, mels)
    up = slopes[:, 2:] / f_diff[1:]  # (n_freqs, mels)
    filters = torch.max(torch.zeros(1), torch.min(down, up))  # (n_freqs, mels)
    return filters * (2.0 / (f_pts[2: n_mels + 2] - f_pts[:n_mels])).unsqueeze(0)


class LogMel(torch.nn.Module):
    """Waveform `(samples,)` -> normalized log-mel `(frames, mels)`."""

    def __init__(self, config: FeatureConfig):
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.hann_window(config.win_length), persistent=False)  # (win_length,)
        self.register_buffer("filterbank", slaney_mel_filterbank(config.n_fft // 2 + 1, config.n_mels),
                             persistent=False)  # (n_fft // 2 + 1, mels)

    def power_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mel power spectrogram `(samples,)` -> `(mels, frames)`, as librosa computes it
        (centred frames, reflect padding, Hann window, power 2)."""
        spectrum = torch.stft(waveform, self.config.n_fft, self.config.hop_length, self.config.win_length,
                              self.window, center=True, pad_mode="reflect", normalized=False, onesided=True,
                              return_complex=True)  # (n_fft // 2 + 1, frames)
        power = spectrum.abs().pow(2.0)
        return torch.matmul(power.transpose(-1, -2), self.filterbank).transpose(-1, -2)  # (mels, frames)

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
