"""asr.data.augment: every augmentation is a pure function of (seed, epoch, index), keeps the length,
and changes the audio measurably; joined examples and their batches."""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np
import pytest
from conftest import num_frames

from asr.audio import SAMPLE_RATE, load_audio
from asr.data.augment import (
    AugmentConfig,
    Augmenter,
    add_noise,
    apply_gain,
    codec_roundtrip,
    coloured_noise,
    ensure_rir_bank,
    join_groups,
    load_rir_bank,
    reverberate,
    telephone,
)
from asr.data.dataset import UtteranceDataset
from asr.data.manifest import read_manifest
from asr.data.sampler import DurationBatchSampler, joined_seconds
from asr.features import FeatureConfig
from asr.text import CharTokenizer

ON = {"noise": dict(noise_prob=1.0), "reverb": dict(reverb_prob=1.0), "telephone": dict(telephone_prob=1.0),
      "codec": dict(codec_prob=1.0), "gain": dict(gain_prob=1.0)}


@pytest.fixture(scope="module")
def speech(speech_manifest) -> list[np.ndarray]:
    return [load_audio(u.audio_path) for u in read_manifest(speech_manifest)]


@pytest.fixture(scope="module")
def rir_bank(tmp_path_factory) -> str:
    return str(ensure_rir_bank(tmp_path_factory.mktemp("rirs") / "bank.npz", AugmentConfig(rir_count=4)))


def _augmenter(speech, rir_bank, **settings) -> Augmenter:
    return Augmenter(AugmentConfig(**settings), lambda i: speech[i], len(speech), rir_bank)


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean).astype(np.float64) ** 2))


def _band_energy_db(audio: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
    return 10 * np.log10(spectrum[(freqs >= low) & (freqs < high)].sum() + 1e-20)


@pytest.mark.parametrize("name", list(ON))
def test_each_augmentation_is_deterministic_keeps_the_length_and_changes_the_audio(speech, rir_bank, name):
    augment = _augmenter(speech, rir_bank, **ON[name])
    audio = speech[0]
    out = augment(audio, seed=1, epoch=2, index=0)
    assert out.dtype == np.float32 and out.shape == audio.shape
    assert np.array_equal(out, augment(audio.copy(), seed=1, epoch=2, index=0))  # pure in (seed, epoch, index)
    assert np.array_equal(out, _augmenter(speech, rir_bank, **ON[name])(audio, seed=1, epoch=2, index=0))
    others = [augment(audio, seed=s, epoch=e, index=0) for s, e in ((2, 2), (1, 3))]
    assert not any(np.array_equal(out, other) for other in others)  # a new draw for a new seed or epoch
    assert np.sqrt(np.mean((out - audio) ** 2)) > 1e-3 * np.sqrt(np.mean(audio**2))  # it did something


def test_off_by_default_and_each_stream_independent(speech, rir_bank):
    assert not AugmentConfig().enabled
    audio = speech[1]
    noisy = _augmenter(speech, rir_bank, noise_prob=1.0, babble_share=0.0)(audio, 0, 0, 1)
    both = _augmenter(speech, rir_bank, noise_prob=1.0, babble_share=0.0, gain_prob=1.0, gain_db=(0.0, 0.0))
    assert np.array_equal(noisy, both(audio, 0, 0, 1))  # switching gain on does not move the noise draws


@pytest.mark.parametrize("babble_share", [0.0, 1.0])
def test_noise_lands_within_the_requested_snr(speech, rir_bank, babble_share):
    augment = _augmenter(speech, rir_bank, noise_prob=1.0, noise_snr_db=(8.0, 12.0), babble_share=babble_share)
    snrs = [_snr_db(speech[i], augment(speech[i], 0, epoch, i)) for i in range(len(speech)) for epoch in range(3)]
    assert all(8.0 - 1e-3 <= snr <= 12.0 + 1e-3 for snr in snrs), snrs
    assert max(snrs) - min(snrs) > 1.0  # drawn, not fixed
    assert add_noise(speech[0], coloured_noise(len(speech[0]), 1.0, np.random.default_rng(0)), 0.0).shape == \
        speech[0].shape


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_coloured_noise_has_the_requested_slope(beta):
    noise = coloured_noise(SAMPLE_RATE * 4, beta, np.random.default_rng(0))
    assert np.mean(noise**2) == pytest.approx(1.0, rel=1e-3)
    f = np.arange(1, SAMPLE_RATE // 2 + 1, dtype=np.float64)  # power per Hz ~ f^-beta
    expected = 10 * np.log10((f[100:500] ** -beta).sum() / (f[4000:8000] ** -beta).sum())
    measured = _band_energy_db(noise, 100, 500) - _band_energy_db(noise, 4000, 8000)
    assert measured == pytest.approx(expected, abs=1.5)


@pytest.mark.parametrize("codec", ["gsm", "mulaw"])
def test_telephone_band_limit_is_visible_in_the_spectrum(speech, codec):
    audio = np.concatenate(speech)
    phone = telephone(audio, codec)
    assert phone.shape == audio.shape
    before = _band_energy_db(audio, 4200, 8000) - _band_energy_db(audio, 0, 4000)
    after = _band_energy_db(phone, 4200, 8000) - _band_energy_db(phone, 0, 4000)
    assert before > -30 and after < before - 30, (before, after)
    assert np.corrcoef(audio, phone)[0, 1] > 0.7  # still the same speech


@pytest.mark.parametrize("codec", ["opus", "mp3"])
def test_codecs_keep_alignment_and_lose_detail_with_fewer_bits(speech, codec):
    audio = np.concatenate(speech)
    errors = []
    for level in (0.5, 0.99):
        out = codec_roundtrip(audio, codec, level)
        assert out.shape == audio.shape
        assert np.corrcoef(audio, out)[0, 1] > 0.8  # aligned (the MP3 encoder delay is removed)
        errors.append(np.mean((out - audio) ** 2))
    assert errors[1] > 2 * errors[0]


def test_gain_scales_and_clips():
    audio = np.full(100, 0.2, np.float32)
    assert np.allclose(apply_gain(audio, -6.0206), 0.1, atol=1e-4)
    assert np.array_equal(apply_gain(audio, 20.0), np.ones(100, np.float32))


def test_reverb_keeps_the_direct_path_in_place_and_adds_a_tail(rir_bank):
    rirs = load_rir_bank(rir_bank)
    assert len(rirs) == 4 and all(r.dtype == np.float32 and len(r) > 1000 for r in rirs)
    click = np.zeros(SAMPLE_RATE, np.float32)
    click[1000] = 1.0
    wet = reverberate(click, rirs[0])
    assert np.argmax(np.abs(wet)) == 1000 and wet[:1000].max() < 1e-6  # nothing before the direct sound
    assert np.sum(wet[1100:] ** 2) > 0.05 * np.sum(wet**2)  # the room's tail


def test_rir_bank_is_deterministic_rendered_once_and_rerendered_for_new_settings(rir_bank, tmp_path):
    stamp = os.stat(rir_bank).st_mtime_ns
    ensure_rir_bank(rir_bank, AugmentConfig(rir_count=4))
    assert os.stat(rir_bank).st_mtime_ns == stamp
    same = ensure_rir_bank(tmp_path / "same.npz", AugmentConfig(rir_count=4))
    assert all(np.array_equal(a, b) for a, b in zip(load_rir_bank(same), load_rir_bank(rir_bank)))  # deterministic
    other = ensure_rir_bank(tmp_path / "other.npz", AugmentConfig(rir_count=2))
    assert len(load_rir_bank(other)) == 2


def test_join_groups_cover_every_utterance_once_within_the_cap():
    durations = np.random.default_rng(0).uniform(1.0, 8.0, size=500)
    config = AugmentConfig(join_prob=0.5, join_max_seconds=20.0)
    groups = join_groups(durations, config, seed=0, epoch=0)
    assert sorted(i for g in groups for i in g) == list(range(500))
    assert all(joined_seconds(durations, g, config.join_pause[1]) <= 20.0 for g in groups if len(g) > 1)
    assert {len(g) for g in groups} >= {1, 2, 3, 4} and max(len(g) for g in groups) <= 4
    assert groups == join_groups(durations, config, seed=0, epoch=0)
    assert groups != join_groups(durations, config, seed=0, epoch=1)
    assert all(len(g) == 1 for g in join_groups(durations, AugmentConfig(), seed=0, epoch=0))


def test_joined_examples_in_batches_and_in_the_dataset(speech_manifest):
    utts = read_manifest(speech_manifest)
    durations = [u.duration for u in utts]
    config = AugmentConfig(join_prob=1.0, join_count=(2, 3), join_max_seconds=12.0)
    groups = lambda epoch: join_groups(durations, config, 0, epoch)  # noqa: E731
    sampler = DurationBatchSampler(durations, 12.0, groups=groups, gap_seconds=config.join_pause[1])
    batches = list(sampler)
    items = [item for batch in batches for item in batch]
    assert sorted(i for item in items for i in item) == list(range(len(utts)))
    assert any(len(item) > 1 for item in items)
    for batch in batches:
        longest = max(joined_seconds(durations, g, config.join_pause[1]) for g in batch)
        assert len(batch) * longest <= 12.0 or len(batch) == 1
    dataset = UtteranceDataset(utts, FeatureConfig(), CharTokenizer(), augment=config)
    group = next(item for item in items if len(item) > 1)
    uid, feats, tokens = dataset[group]
    assert uid == "+".join(utts[i].id for i in group)
    assert CharTokenizer().decode(tokens.tolist()) == " ".join(utts[i].text for i in group)
    frames = functools.partial(num_frames, FeatureConfig())
    low = frames(int(sum(durations[i] for i in group) * SAMPLE_RATE))
    high = frames(int(joined_seconds(durations, group, config.join_pause[1]) * SAMPLE_RATE))
    assert low <= feats.shape[0] <= high + 1
    again = UtteranceDataset(utts, FeatureConfig(), CharTokenizer(), augment=config)[group]
    assert uid == again[0] and np.array_equal(feats.numpy(), again[1].numpy())


def test_dataset_with_every_augmentation_is_pure_in_seed_epoch_index(speech_manifest, rir_bank):
    utts = read_manifest(speech_manifest)
    config = dataclasses.replace(AugmentConfig(), **{k: v for on in ON.values() for k, v in on.items()})
    make = lambda epoch: UtteranceDataset(utts, FeatureConfig(), CharTokenizer(), seed=5, epoch=epoch,  # noqa: E731
                                          augment=config, rir_bank=rir_bank)
    first, again, later = make(0)[2], make(0)[2], make(1)[2]
    assert np.array_equal(first[1].numpy(), again[1].numpy())
    assert first[1].shape == later[1].shape and not np.array_equal(first[1].numpy(), later[1].numpy())
    plain = UtteranceDataset(utts, FeatureConfig(), CharTokenizer())[2]
    assert plain[1].shape == first[1].shape  # same frames: the length bookkeeping holds
