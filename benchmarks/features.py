"""Log-mel throughput, ours against librosa with the same parameters.

    python -m benchmarks.features [--manifest DEV.jsonl] [--seconds 300] [--threads 1 2]

Both sides compute what training consumes, utterance by utterance: an 80-bin
Slaney mel power spectrogram (25 ms Hann windows every 10 ms, 512-point FFT,
centered with reflect padding), its log (floored at 1e-10) and per-utterance
CMVN. ours is `asr.features.LogMel` (torchaudio); librosa is
`librosa.feature.melspectrogram` plus the same log and CMVN in numpy. The two
outputs are compared first, so the speed figures are for the same result.
Audio is decoded before timing; figures are audio seconds per second of wall
time (best of 3 passes). One thread is what each DataLoader worker uses, and
this speed is why features are computed on the fly rather than cached: a
worker makes features hundreds of times faster than the model trains on them.

Run it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (`make bench` does) so
that numpy, and so librosa, uses its best kernel; the BLAS kernel is printed.
"""

from __future__ import annotations

import argparse

import librosa
import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from asr.audio import SAMPLE_RATE, load_audio
from asr.data.manifest import read_manifest
from asr.features import FeatureConfig, LogMel
from benchmarks.common import DEV_MANIFEST, best_time, machine_line


def librosa_logmel(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The same features as LogMel, with librosa: (samples,) -> (frames, mels)."""
    power = librosa.feature.melspectrogram(
        y=audio, sr=SAMPLE_RATE, n_fft=config.n_fft, hop_length=config.hop_length, win_length=config.win_length,
        window="hann", center=True, pad_mode="reflect", power=2.0, n_mels=config.n_mels, htk=False, norm="slaney")
    log_mel = np.log(np.maximum(power, 1e-10)).T  # (frames, mels)
    mean = log_mel.mean(axis=0, keepdims=True)
    var = np.maximum(log_mel.var(axis=0, keepdims=True), 1e-5)
    return (log_mel - mean) / np.sqrt(var)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", default=str(DEV_MANIFEST))
    parser.add_argument("--seconds", type=float, default=300.0, help="audio to featurize per pass")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    print(machine_line())
    kernels = ", ".join(f"{i['internal_api']} {i.get('architecture', '')}" for i in threadpool_info())
    print(f"BLAS: {kernels}")
    config = FeatureConfig()
    clips, total = [], 0.0
    for utt in read_manifest(args.manifest):
        if total >= args.seconds:
            break
        clips.append(load_audio(utt.audio_path, utt.offset, utt.duration))
        total += len(clips[-1]) / SAMPLE_RATE
    logmel = LogMel(config)
    tensors = [torch.from_numpy(clip) for clip in clips]

    with torch.inference_mode():
        worst = max(float(np.abs(logmel(t).numpy() - librosa_logmel(c, config)).max()) for t, c in zip(tensors, clips))
    print(f"features: {len(clips)} utterances, {total:.0f} s of audio; largest difference ours vs librosa "
          f"{worst:.1e} (normalized units)")

    def ours():
        with torch.inference_mode():
            for t in tensors:
                logmel(t)

    def reference():
        for c in clips:
            librosa_logmel(c, config)

    for threads in args.threads:
        torch.set_num_threads(threads)
        with threadpool_limits(threads):
            ours_speed = total / best_time(ours)
            librosa_speed = total / best_time(reference)
        print(f"features  threads={threads}  ours {ours_speed:8.0f} audio-s/s   librosa {librosa_speed:8.0f} audio-s/s"
              f"   ours/librosa {ours_speed / librosa_speed:.2f}x")


if __name__ == "__main__":
    main()
