"""Self-describing checkpoints and `load_model`.

A checkpoint is a dict saved with torch.save:
    format          CHECKPOINT_FORMAT
    asr_version     version of this package that wrote it
    torch_version   version of torch that wrote it
    model_config    ModelConfig fields
    feature_config  FeatureConfig fields
    vocab           tokenizer vocabulary (list of symbols, blank first)
    decoding        DecodingOptions fields to use by default (may be empty); an LM or
                    lexicon file name is relative to the checkpoint's folder (or absolute)
    model_state_dict
    train_state     optional: optimizer, step, sampler position, RNG (resume only)

Files are written to a temp file and renamed, so a kill at any moment leaves
either the old checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from asr import __version__
from asr.atomic import WriteError, atomic_path
from asr.config import ConfigError, merge
from asr.decode import FILE_OPTIONS, DecodingOptions
from asr.errors import AsrError
from asr.features import FeatureConfig
from asr.model import CTCModel, ModelConfig, quantize_int8
from asr.precision import Precision, pick_device, pick_inference_precision
from asr.text import CharTokenizer

CHECKPOINT_FORMAT = 1


class CheckpointError(AsrError):
    """A file that is not a usable asr checkpoint."""


@dataclass
class LoadedModel:
    """Everything needed to turn audio into text with a trained model.

    `decoding` is how this model decodes unless told otherwise (`override_decoding`
    applies flags on top): the checkpoint's stored options, with LM and lexicon paths
    resolved, or the defaults (greedy) where it stores none. `precision` is what the
    network runs in (`with loaded.precision.autocast(): loaded.model(...)`; asr.precision).
    """

    model: CTCModel
    features: FeatureConfig
    tokenizer: CharTokenizer
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    path: str = ""
    precision: Precision = field(default_factory=lambda: pick_inference_precision("float32"))

    @property
    def frame_seconds(self) -> float:
        """Seconds per model output frame (feature hop x subsampling)."""
        return self.features.hop_ms / 1000 * self.model.config.subsample


def make_checkpoint(model: CTCModel, features: FeatureConfig, tokenizer: CharTokenizer,
                    decoding: dict | None = None, train_state: dict | None = None) -> dict:
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "asr_version": __version__,
        "torch_version": torch.__version__,
        "model_config": dataclasses.asdict(model.config),
        "feature_config": dataclasses.asdict(features),
        "vocab": list(tokenizer.vocab),
        "decoding": dict(decoding or {}),
        "model_state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if train_state is not None:
        checkpoint["train_state"] = train_state
    return checkpoint


def save_atomic(obj, path: str | os.PathLike) -> None:
    """torch.save to `path` atomically (temp file, fsync, rename: see asr.atomic). A failed write (disk
    full) is a WriteError that says the file at `path`, if any, is the one from before."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            try:
                torch.save(obj, tmp)
            except (OSError, RuntimeError) as err:  # torch reports ENOSPC as RuntimeError
                raise WriteError(f"{path}: cannot write it ({str(err).splitlines()[0]})") from None
    except WriteError as err:
        kept = f"the previous {path.name} is kept" if path.exists() else "nothing was written"
        raise WriteError(f"{err}; {kept}") from None


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint dict on the CPU, with a clear error for anything else."""
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.pt"))
        hint = f" (it holds {', '.join(inside[:3])}{', ...' if len(inside) > 3 else ''})" if inside else ""
        raise CheckpointError(f"{path}: is a directory; pass the checkpoint file inside it{hint}")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a torn or foreign file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an asr checkpoint (format {CHECKPOINT_FORMAT})")
    return checkpoint


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", precision: str = "float32") -> LoadedModel:
    """Rebuild the model (eval mode), feature config, tokenizer and default decoding options
    stored in a checkpoint. Weights stored in half precision (an exported model, asr.pretrained)
    become float32: load_state_dict copies them into the model's float32 parameters. The network
    runs in `precision` (asr.precision.INFERENCE_PRECISIONS; "auto": bfloat16 on BF16 CPUs)."""
    device = pick_device(device)
    checkpoint = read_checkpoint(path)
    model = CTCModel(ModelConfig(**checkpoint["model_config"]))
    model.load_state_dict(checkpoint["model_state_dict"])
    model.to(device).eval()
    resolved = pick_inference_precision(precision, device)
    if resolved.name == "int8":
        model = quantize_int8(model)
    return LoadedModel(
        model=model,
        features=FeatureConfig(**checkpoint["feature_config"]),
        tokenizer=CharTokenizer(checkpoint["vocab"]),
        decoding=stored_decoding(checkpoint.get("decoding", {}), path),
        path=str(path),
        precision=resolved,
    )


def stored_decoding(stored: dict, path: str | os.PathLike) -> DecodingOptions:
    """The decoding options a checkpoint at `path` stores, its LM and lexicon names resolved
    against the checkpoint's folder. Raises CheckpointError for options this version rejects."""
    folder = Path(path).resolve().parent
    files = {key: str(folder / stored[key]) for key in FILE_OPTIONS if stored.get(key)}
    try:
        return merge(DecodingOptions(), {**stored, **files})
    except ConfigError as err:
        raise CheckpointError(f"{path}: stored decoding options: {err}") from None
