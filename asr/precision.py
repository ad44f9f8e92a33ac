"""The floating-point precision training (`train.precision`) and inference (`--precision`) compute in.

    precision = pick_precision("auto", torch.device("cpu"))
    precision.name, precision.reason        # "bfloat16", "the CPU has avx512_bf16"
    with precision.autocast(): loss = ...   # the forward pass; backward follows the same casts

"auto" is float16 autocast on CUDA (with a GradScaler), bfloat16 autocast on a CPU whose
instructions include BF16 arithmetic (AMX or AVX512-BF16), and float32 elsewhere: without
those instructions bfloat16 is emulated and slower than float32 (benchmarks/train_step.py
measures both). "float32", "bfloat16" and "float16" force one. Autocast runs the matrix
products (LSTM, linear) in the low precision; the parameters, the optimizer state and so
every checkpoint stay float32, and the model's log-softmax and the CTC loss run in float32.

Inference (`pick_inference_precision`, the `--precision` flag of transcribe, evaluate and
serve): "auto" is bfloat16 autocast on a CPU with BF16 instructions, float32 elsewhere
(CUDA included: not measured); "int8" quantizes the LSTM and output weights to int8 when
the model loads (dynamic quantization: faster still on the CPU, but it changed a third of
the dev transcripts where bfloat16 changed a tenth, so it is offered, not the default).
On the bundled model bfloat16 ran the network 1.7x faster
than float32 at one thread, with the same WER on the 480 dev_report utterances within
0.3 points (benchmarks/inference_precision.py; the table is in benchmarks/README.md, with
int8 dynamic quantization and onnxruntime, which were not adopted).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

from asr.config import ConfigError

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
INFERENCE_PRECISIONS = ("auto", "float32", "bfloat16", "int8")
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of native BF16 arithmetic


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> tuple[str, ...]:
    """The BF16 instruction flags this CPU reports (empty where it has none, or no /proc)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return tuple(flag for flag in CPU_BF16_FLAGS if flag in flags)


@dataclass(frozen=True)
class Precision:
    """A resolved precision: what autocast runs in on `device_type`, and why it was chosen."""

    name: str  # "float32" | "bfloat16" | "float16"
    device_type: str  # "cpu" | "cuda"
    reason: str  # for the log: "the CPU has avx512_bf16", "forced by train.precision", ...

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, self.name)

    @property
    def needs_scaler(self) -> bool:
        """float16 gradients underflow without loss scaling; bfloat16 has float32's range."""
        return self.name == "float16"

    def autocast(self):
        """The context the forward pass runs in: autocast to `dtype`, or nothing for float32 (and
        int8, whose quantized weights are put in the model when it loads: asr.model.quantize_int8)."""
        if self.name in ("float32", "int8"):
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def pick_precision(setting: str, device: torch.device, flag: str = "train.precision") -> Precision:
    """Resolve `setting` (one of PRECISIONS) for `device`; ConfigError for a combination that
    cannot run (float16 autocast on a CPU)."""
    if setting not in PRECISIONS:
        raise ConfigError(f"{flag} must be one of {', '.join(PRECISIONS)}; got {setting!r}")
    if setting == "float16" and device.type != "cuda":
        raise ConfigError(f"{flag} float16 needs a CUDA device (on a CPU use bfloat16 or float32)")
    if setting != "auto":
        return Precision(setting, device.type, f"set by {flag}")
    if device.type == "cuda":
        return Precision("float16", "cuda", "CUDA device")
    return _bfloat16_if_the_cpu_has_it(device)


def pick_inference_precision(setting: str, device: torch.device | str = "cpu",
                             flag: str = "--precision") -> Precision:
    """Resolve `setting` (one of INFERENCE_PRECISIONS) for running a model on `device`: "auto" is
    bfloat16 on a CPU with BF16 instructions, float32 elsewhere; ConfigError for an unknown name."""
    device = torch.device(device)
    if setting not in INFERENCE_PRECISIONS:
        raise ConfigError(f"{flag} must be one of {', '.join(INFERENCE_PRECISIONS)}; got {setting!r}")
    if setting == "int8" and device.type != "cpu":
        raise ConfigError(f"{flag} int8 runs on the CPU only (dynamic quantization); got device {device}")
    if setting != "auto":
        return Precision(setting, device.type, f"set by {flag}")
    return _bfloat16_if_the_cpu_has_it(device)


def _bfloat16_if_the_cpu_has_it(device: torch.device) -> Precision:
    """What "auto" means off CUDA, for training and inference alike: bfloat16 on a CPU with BF16
    instructions, float32 elsewhere (emulated bfloat16 would be slower than float32)."""
    flags = cpu_bf16_flags() if device.type == "cpu" else ()
    if flags:
        return Precision("bfloat16", device.type, f"the CPU has {', '.join(flags)}")
    reason = "the CPU has no BF16 instructions (amx_bf16, avx512_bf16)" if device.type == "cpu" else "not a CPU"
    return Precision("float32", device.type, reason)


def pick_device(name: str | torch.device, local_rank: int = 0) -> torch.device:
    """The device called `name`: "cpu", "cuda", "cuda:1", "mps", or "auto" (a CUDA GPU if there is one).
    Under torchrun "cuda" means GPU `local_rank`. ConfigError for a name torch does not know or a
    GPU this machine does not have, before anything is moved there."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device("cuda", local_rank) if name == "cuda" else torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {name!r} (choose from: cpu, cuda, cuda:N, auto)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ConfigError(f"device {name!r}: this machine has {count} CUDA GPU(s) that torch can use")
    elif device.type not in ("cpu", "mps"):
        raise ConfigError(f"unknown device {name!r} (choose from: cpu, cuda, cuda:N, auto)")
    return device
