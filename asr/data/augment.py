"""On-the-fly augmentation of training audio: noise, rooms, telephones, codecs, gain, joined utterances.

The training dataset applies `Augmenter` to each example's raw audio `(samples,)`
at 16 kHz, before log-mel, in the DataLoader workers. Each augmentation fires
with its own probability and draws its strength from its own range in
`AugmentConfig` (all probabilities are 0 by default: nothing changes). The chain
follows the physics of a recording:

    joined utterances -> room (reverberation) -> additive noise -> gain (and clipping)
        -> telephone channel -> low-bitrate codec

Every draw comes from `np.random.default_rng([seed, epoch, index, STREAM])`, one
stream per augmentation, so an example's audio is a pure function of (seed,
epoch, index) -- an exact resume stays exact -- and switching one augmentation
on or off leaves the others' draws unchanged (clean ablations). Every
augmentation returns exactly as many samples as it was given, so durations known
to the sampler stay right.

    noise       coloured Gaussian noise (power spectrum 1/f^beta, beta in [0, 2]: white to
                brown) or babble (3-6 other training utterances summed), at an SNR drawn
                from `noise_snr_db` (signal and noise power over the whole example)
    reverb      convolution with a room impulse response from a bank rendered once with
                pyroomacoustics (shoebox rooms, RT60 in `rt60`; `ensure_rir_bank`), the
                direct path kept in place
    telephone   down to 8 kHz and back (a low-pass at 3.6 kHz; above 4 kHz is 40+ dB down),
                through GSM 06.10 or 8-bit mu-law coding
    codec       Opus or MP3 through libsndfile at a compression level from `codec_levels`
                (0.9 is about 24-30 kbit/s, 0.99 about 8 kbit/s, at 16 kHz)
    gain        a gain in dB from `gain_db`; what goes past full scale is clipped
    join        2-4 utterances with 0.1-0.6 s pauses as one example of at most
                `join_max_seconds`: `join_groups` decides the groups of an epoch (the batch
                sampler packs them by their joined duration), the dataset joins them

Measured cost per second of audio: benchmarks/augment.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.atomic import atomic_path
from asr.audio import SAMPLE_RATE
from asr.configs import AugmentConfig
from asr.data.sampler import joined_seconds
from asr.errors import AsrError

TELEPHONE_RATE = 8000  # Hz
PAUSE_NOISE = 1e-4  # RMS of the faint noise in the pauses between joined utterances (-80 dBFS)
# One random stream per augmentation: draws of one never shift with another switched on or off.
JOIN, REVERB, NOISE, GAIN, TELEPHONE, CODEC = range(1, 7)


class AugmentError(AsrError):
    """An augmentation setting or resource that cannot be used."""


def join_groups(durations: list[float] | np.ndarray, config: AugmentConfig, seed: int,
                epoch: int) -> list[tuple[int, ...]]:
    """The examples of an epoch as groups of utterance indices; every utterance is in exactly one.
    With probability `join_prob` an utterance starts a group of 2-4 (its successors in a seeded
    shuffle) that stays within `join_max_seconds` counting the longest pauses; the rest stay alone."""
    rng = np.random.default_rng([seed, epoch, JOIN])
    order = rng.permutation(len(durations)).tolist()
    groups, position = [], 0
    low, high = config.join_count
    while position < len(order):
        group = [order[position]]
        position += 1
        if config.join_prob > 0 and rng.random() < config.join_prob:
            size = int(rng.integers(low, high + 1))
            while len(group) < size and position < len(order):
                if joined_seconds(durations, (*group, order[position]), config.join_pause[1]) > config.join_max_seconds:
                    break
                group.append(order[position])
                position += 1
        groups.append(tuple(group))
    return groups


def join(pieces: list[np.ndarray], rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Utterances `(samples,)` one after another, with pauses of faint noise: `(samples,)`."""
    out = [pieces[0]]
    for piece in pieces[1:]:
        pause = int(rng.uniform(*config.join_pause) * SAMPLE_RATE)
        out += [(rng.standard_normal(pause) * PAUSE_NOISE).astype(np.float32), piece]
    return np.concatenate(out)


class Augmenter:
    """`augmenter(audio, seed, epoch, index)` -> augmented audio of the same length.

    `load_utterance(i)` gives training utterance i `(samples,)` (for babble), `num_utterances`
    how many there are; `rir_bank` is the bank's file (needed when reverb_prob > 0)."""

    def __init__(self, config: AugmentConfig, load_utterance: Callable[[int], np.ndarray] | None = None,
                 num_utterances: int = 0, rir_bank: str | os.PathLike | None = None):
        self.config = config
        self.load_utterance = load_utterance
        self.num_utterances = num_utterances
        self.rir_bank_path = rir_bank
        self._rirs: list[np.ndarray] | None = None  # loaded lazily, once per worker process

    def __call__(self, audio: np.ndarray, seed: int, epoch: int, index: int) -> np.ndarray:
        cfg = self.config
        streams = {k: np.random.default_rng([seed, epoch, index, k]) for k in (REVERB, NOISE, GAIN, TELEPHONE,
                                                                               CODEC)}
        if cfg.reverb_prob and streams[REVERB].random() < cfg.reverb_prob:
            rirs = self.rirs()
            audio = reverberate(audio, rirs[streams[REVERB].integers(len(rirs))])
        if cfg.noise_prob and streams[NOISE].random() < cfg.noise_prob:
            rng = streams[NOISE]
            snr = rng.uniform(*cfg.noise_snr_db)
            if self.load_utterance is not None and self.num_utterances > 1 and rng.random() < cfg.babble_share:
                noise = self.babble(len(audio), index, rng)
            else:
                noise = coloured_noise(len(audio), rng.uniform(0.0, 2.0), rng)
            audio = add_noise(audio, noise, snr)
        if cfg.gain_prob and streams[GAIN].random() < cfg.gain_prob:
            audio = apply_gain(audio, streams[GAIN].uniform(*cfg.gain_db))
        if cfg.telephone_prob and streams[TELEPHONE].random() < cfg.telephone_prob:
            audio = telephone(audio, "gsm" if streams[TELEPHONE].random() < cfg.gsm_share else "mulaw")
        if cfg.codec_prob and streams[CODEC].random() < cfg.codec_prob:
            rng = streams[CODEC]
            codec = "mp3" if rng.random() < cfg.mp3_share else "opus"
            audio = codec_roundtrip(audio, codec, rng.uniform(*cfg.codec_levels))
        return audio

    def babble(self, length: int, index: int, rng: np.random.Generator) -> np.ndarray:
        """`length` samples of 3-6 other training utterances talking at once, each at unit power."""
        low, high = self.config.babble_talkers
        out = np.zeros(length, np.float32)
        for _ in range(int(rng.integers(low, high + 1))):
            other = int(rng.integers(self.num_utterances - 1))
            talker = self.load_utterance(other + (other >= index))  # any utterance but the example's own
            talker = np.tile(talker, -(-length // len(talker)))
            start = int(rng.integers(len(talker) - length + 1))
            talker = talker[start : start + length]
            out += talker / max(float(np.sqrt(np.mean(talker**2))), 1e-8)
        return out

    def rirs(self) -> list[np.ndarray]:
        if self._rirs is None:
            if not self.rir_bank_path:
                raise AugmentError("reverb_prob > 0 needs a bank of impulse responses (augment.rir_bank)")
            self._rirs = load_rir_bank(self.rir_bank_path)
        return self._rirs


def coloured_noise(length: int, beta: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise `(length,)` with power spectrum ~ 1/f^beta (0 white, 1 pink, 2 brown), unit power."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.fft.rfftfreq(length)
    freqs[0] = freqs[1] if length > 1 else 1.0
    noise = np.fft.irfft(spectrum * freqs ** (-beta / 2), n=length)
    return (noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)).astype(np.float32)


def add_noise(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`audio + noise`, the noise scaled so that mean(audio^2) / mean(noise^2) is `snr_db` dB."""
    signal_power = float(np.mean(audio.astype(np.float64) ** 2))
    noise_power = max(float(np.mean(noise.astype(np.float64) ** 2)), 1e-20)
    scale = np.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    return (audio + scale * noise).astype(np.float32)


def apply_gain(audio: np.ndarray, gain_db: float) -> np.ndarray:
    """Scale by `gain_db` dB and clip at full scale, as an overdriven recorder does."""
    return np.clip(audio * 10 ** (gain_db / 20), -1.0, 1.0).astype(np.float32)


def reverberate(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with `rir` `(taps,)`; the direct path (its peak) stays where the dry sound was,
    the tail is cut at the input's length, and the level is kept (same power as the input)."""
    start = int(np.argmax(np.abs(rir)))
    rir = rir[start:]
    size = 1 << int(np.ceil(np.log2(len(audio) + len(rir) - 1)))
    wet = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(rir, size), size)[: len(audio)]
    scale = np.sqrt(np.mean(audio.astype(np.float64) ** 2) / max(float(np.mean(wet**2)), 1e-20))
    return (wet * scale).astype(np.float32)


def telephone(audio: np.ndarray, codec: str = "mulaw") -> np.ndarray:
    """A narrowband phone line: 16 kHz -> 8 kHz ("gsm": GSM 06.10, "mulaw": 8-bit mu-law) -> 16 kHz."""
    if codec not in ("gsm", "mulaw"):
        raise AugmentError(f"unknown telephone codec {codec!r} (gsm or mulaw)")
    narrow = _phone_filter(audio, SAMPLE_RATE, TELEPHONE_RATE)
    if codec == "gsm":
        narrow = _roundtrip(np.clip(narrow, -1, 1), TELEPHONE_RATE, "WAV", "GSM610")
    else:
        narrow = _mulaw(narrow)
    return _fit(_phone_filter(narrow, TELEPHONE_RATE, SAMPLE_RATE), len(audio))


def codec_roundtrip(audio: np.ndarray, codec: str, level: float) -> np.ndarray:
    """Encode and decode with "opus" or "mp3" at libsndfile compression `level` (higher: fewer bits)."""
    if codec == "opus":
        return _roundtrip(np.clip(audio, -1, 1), SAMPLE_RATE, "OGG", "OPUS", compression_level=level)
    if codec == "mp3":
        return _roundtrip(np.clip(audio, -1, 1), SAMPLE_RATE, "MP3", "MPEG_LAYER_III", compression_level=level,
                          bitrate_mode="CONSTANT", align=True)
    raise AugmentError(f"unknown codec {codec!r} (opus or mp3)")


def ensure_rir_bank(path: str | os.PathLike, config: AugmentConfig, seed: int = 0) -> Path:
    """Render the bank of `config.rir_count` room impulse responses into `path` unless a bank made with
    the same settings is there. A pure function of (settings, seed) for a given pyroomacoustics
    version; the bank is kept with the run so that a resume never depends on re-rendering it."""
    path = Path(path)
    settings = {"rir_count": config.rir_count, "rt60": list(config.rt60), "seed": seed}
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    if path.is_file():
        with np.load(path) as bank:
            if str(bank["key"]) == key:
                return path
    rirs = [_render_rir([seed, i], config.rt60) for i in range(config.rir_count)]
    lengths = np.array([len(r) for r in rirs])
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, key=key, settings=json.dumps(settings), lengths=lengths,
                 taps=np.concatenate(rirs).astype(np.float32))
    return path


def load_rir_bank(path: str | os.PathLike) -> list[np.ndarray]:
    """The impulse responses `(taps,)` of a bank written by `ensure_rir_bank`."""
    try:
        with np.load(path) as bank:
            ends = np.cumsum(bank["lengths"])
            taps = bank["taps"]
    except (OSError, KeyError, ValueError) as err:
        raise AugmentError(f"{path}: not a bank of impulse responses ({err})") from None
    return np.split(taps, ends[:-1])


def _render_rir(key: list[int], rt60_range: tuple[float, float]) -> np.ndarray:
    """One shoebox room (3x3x2.4 to 10x8x4 m) with RT60 drawn from `rt60_range`, source and microphone
    at least 0.5 m from the walls: image sources up to order 3, ray tracing for the tail. `key` seeds
    both the geometry and pyroomacoustics' own generators (its ray tracing is random)."""
    try:
        import pyroomacoustics as pra
    except ImportError:
        raise AugmentError("reverberation needs pyroomacoustics (pip install pyroomacoustics)") from None
    rng = np.random.default_rng(key)
    pra.random.seed(numpy=key, libroom=int(rng.integers(2**63)))
    dims = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
    absorption, _ = pra.inverse_sabine(rng.uniform(*rt60_range), dims)
    room = pra.ShoeBox(dims, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=3, ray_tracing=True,
                       air_absorption=True)
    room.set_ray_tracing(receiver_radius=0.5, n_rays=2000, energy_thres=1e-5)
    room.add_source(rng.uniform(0.5, dims - 0.5))
    room.add_microphone(rng.uniform(0.5, dims - 0.5))
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    return rir / np.abs(rir).max()


def _phone_filter(audio: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """Resample between 16 and 8 kHz with a long, steep low-pass at 3.6 kHz (a phone's band ends at 3.4):
    what lies above 4 kHz ends up more than 40 dB down."""
    import torch
    import torchaudio.functional as AF

    audio = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    return AF.resample(audio, rate, new_rate, lowpass_filter_width=16, rolloff=0.9).numpy()


def _mulaw(audio: np.ndarray, mu: int = 255) -> np.ndarray:
    """8-bit mu-law quantization (G.711), encoded and decoded."""
    x = np.clip(audio, -1, 1)
    code = np.round((np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) + 1) / 2 * mu)  # 0..255
    y = code / mu * 2 - 1
    return (np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu).astype(np.float32)


def _roundtrip(audio: np.ndarray, rate: int, fmt: str, subtype: str, align: bool = False,
               **options) -> np.ndarray:
    """Encode in memory with libsndfile and decode back: float32 of the input's length. `align`:
    find and drop the encoder delay (MP3 adds ~1105 samples at low bitrates) by cross-correlation."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=fmt, subtype=subtype, **options)
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32")
    if align and len(decoded) > len(audio):
        decoded = decoded[_delay(audio, decoded, len(decoded) - len(audio)) :]
    return _fit(decoded, len(audio))


def _delay(reference: np.ndarray, delayed: np.ndarray, max_lag: int) -> int:
    """The lag in [0, max_lag] at which `delayed` best matches `reference`."""
    size = 1 << int(np.ceil(np.log2(len(delayed) + len(reference))))
    correlation = np.fft.irfft(np.fft.rfft(delayed, size) * np.conj(np.fft.rfft(reference, size)), size)
    return int(np.argmax(correlation[: max_lag + 1]))


def _fit(audio: np.ndarray, length: int) -> np.ndarray:
    """Cut or zero-pad `(samples,)` to `length`."""
    if len(audio) >= length:
        return np.ascontiguousarray(audio[:length], dtype=np.float32)
    return np.concatenate([audio, np.zeros(length - len(audio), np.float32)]).astype(np.float32)
