"""asr.features: log-mel parity with librosa, per-utterance CMVN, frame counts, SpecAugment."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch
from conftest import num_frames

from asr.audio import load_audio
from asr.features import FeatureConfig, LogMel, SpecAugmentConfig, spec_augment

CONFIGS = {
    "default": FeatureConfig(),
    "40 bins, 20/15 ms, n_fft=320": FeatureConfig(n_mels=40, win_ms=20.0, hop_ms=15.0, n_fft=320),
}


@pytest.fixture(scope="module")
def speech(speech_dir) -> np.ndarray:
    """About two seconds of espeak speech, 16 kHz `(samples,)`."""
    return load_audio(speech_dir / "utt0.wav")


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_power_mel_matches_librosa(speech, name):
    config = CONFIGS[name]
    ours = LogMel(config).power_mel(torch.from_numpy(speech)).numpy()  # (mels, frames)
    reference = librosa.feature.melspectrogram(
        y=speech, sr=16000, n_fft=config.n_fft, win_length=config.win_length, hop_length=config.hop_length,
        window="hann", center=True, pad_mode="reflect", power=2.0, n_mels=config.n_mels, htk=False, norm="slaney",
    )
    assert ours.shape == reference.shape == (config.n_mels, num_frames(config, len(speech)))
    # float32 STFTs agree to ~1e-5 relative; the absolute floor covers near-silent bins.
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6 * reference.max())


def test_log_mel_is_normalized_per_utterance(speech):
    config = FeatureConfig()
    logmel = LogMel(config)
    features = logmel(torch.from_numpy(speech))  # (frames, mels)
    # A gain is a constant shift of every log-mel bin, which CMVN removes. (Noise keeps
    # espeak's digital silence off the log floor, which a gain would not shift.)
    noisy = speech + 1e-3 * np.random.default_rng(0).standard_normal(len(speech)).astype(np.float32)
    quiet, louder = logmel(torch.from_numpy(noisy)), logmel(torch.from_numpy(4.0 * noisy))
    assert features.shape == (num_frames(config, len(speech)), config.n_mels)
    assert features.mean(dim=0).abs().max() < 1e-4
    assert torch.allclose(features.std(dim=0, unbiased=False), torch.ones(config.n_mels), atol=1e-3)
    assert torch.allclose(quiet, louder, atol=1e-3)


def test_constant_bins_do_not_blow_up():
    """Digital silence has zero variance; the variance floor keeps the output finite (all zeros)."""
    features = LogMel(FeatureConfig())(torch.zeros(8000))
    assert torch.isfinite(features).all()
    assert features.abs().max() == 0


@pytest.mark.parametrize("name", CONFIGS)
def test_one_frame_per_hop_plus_one(name):
    config = CONFIGS[name]
    logmel = LogMel(config)
    generator = torch.Generator().manual_seed(0)
    for samples in [config.n_fft // 2 + 1, 399, 400, 401, 1599, 1600, 1601, 16000, 16001, 23456]:
        features = logmel(torch.randn(samples, generator=generator))
        assert features.shape[0] == num_frames(config, samples), samples


def _batch(lengths, frames=120, mels=80):
    """All-ones features `(batch, frames, mels)`, including the padding, so any masking shows."""
    return torch.ones(len(lengths), frames, mels), torch.tensor(lengths)


def test_time_masks_stay_inside_valid_frames():
    config = SpecAugmentConfig(freq_masks=0, time_masks=3, time_width=40, max_time_fraction=0.2)
    features, lengths = _batch([120, 90, 50, 17])
    masked_somewhere = torch.zeros(len(lengths), dtype=torch.bool)
    for seed in range(50):
        out = spec_augment(features, lengths, config, torch.Generator().manual_seed(seed))
        for b, length in enumerate(lengths.tolist()):
            assert (out[b, length:] == 1).all(), "padding was masked"
            masked_frames = (out[b, :length] == 0).all(dim=1)  # (frames,)
            # Each mask is at most min(time_width, fraction * length) frames wide.
            assert masked_frames.sum() <= config.time_masks * min(config.time_width, int(0.2 * length))
            masked_somewhere[b] |= masked_frames.any()
    assert masked_somewhere.all()


def test_frequency_masks_cover_whole_bands_within_width():
    config = SpecAugmentConfig(freq_masks=2, freq_width=10, time_masks=0)
    features, lengths = _batch([100, 60])
    changed = False
    for seed in range(20):
        out = spec_augment(features, lengths, config, torch.Generator().manual_seed(seed))
        masked_bins = (out == 0).all(dim=1)  # (batch, mels): bins masked across every frame
        assert ((out == 0) == masked_bins.unsqueeze(1)).all(), "a mask did not span the whole band"
        assert (masked_bins.sum(dim=1) <= 2 * 10).all()
        changed |= bool(masked_bins.any())
    assert changed


def test_spec_augment_is_deterministic_given_a_generator_and_varies_with_the_seed():
    config = SpecAugmentConfig()
    features = torch.randn(4, 300, 80, generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([300, 250, 200, 150])
    a = spec_augment(features, lengths, config, torch.Generator().manual_seed(7))
    b = spec_augment(features, lengths, config, torch.Generator().manual_seed(7))
    c = spec_augment(features, lengths, config, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, features)
    assert not torch.equal(a, c)


def test_disabled_spec_augment_changes_nothing():
    config = SpecAugmentConfig(freq_masks=0, time_masks=0)
    assert not config.enabled
    features = torch.randn(2, 50, 80)
    assert torch.equal(spec_augment(features, torch.tensor([50, 30]), config), features)
