"""The bundled default model: what `asr transcribe FILE` and `asr demo` use without --model.

This folder ships inside the package (pyproject's package-data):
    model.pt        a checkpoint without train_state: weights, configs, vocabulary and
                    the decoding options to use by default (see asr.checkpoint)
    MODEL_CARD.md   training data and licence, measured accuracy and speed, known limits
    <LM, lexicon>   the files named by the stored decoding options, if beam + LM is used

`export_model` (the `asr export` command) writes model.pt and copies the LM and
lexicon from a training run's checkpoint. The exported weights are stored in half
precision (half the download; `load_model` converts them back to float32; the effect
on transcripts is measured in recipes/speechocean762/RESULTS.md). File names in the
stored decoding options are relative to the checkpoint's folder; `load_model` resolves them.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import torch

from asr.atomic import atomic_path, make_folder
from asr.checkpoint import CheckpointError, read_checkpoint, save_atomic
from asr.config import merge
from asr.decode import DecodingOptions

PRETRAINED_DIR = Path(__file__).resolve().parent
MODEL_FILE = "model.pt"
MAX_MODEL_BYTES = 20_000_000  # the bundled checkpoint must stay under 20 MB
MAX_PACKAGE_BYTES = 40_000_000  # and with its LM and lexicon under 40 MB


def default_model_path() -> Path:
    """Path of the bundled checkpoint. Raises CheckpointError if this install has none."""
    path = PRETRAINED_DIR / MODEL_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: no bundled model in this installation; pass --model CKPT")
    return path


def export_model(checkpoint: str | os.PathLike, dest_dir: str | os.PathLike = PRETRAINED_DIR,
                 lm: str | os.PathLike | None = None, lexicon: str | os.PathLike | None = None,
                 decoding: dict | None = None) -> Path:
    """Write `dest_dir/model.pt` from a training checkpoint, without its train_state, weights in float16.

    `lm` and `lexicon` are copied next to it and named in the stored decoding
    options, which `decoding` (DecodingOptions fields, values may be strings)
    updates. Raises CheckpointError if the result would exceed MAX_MODEL_BYTES (or,
    with the LM and lexicon, MAX_PACKAGE_BYTES) and ConfigError for an unknown or ill-typed decoding option.
    """
    dest_dir = Path(dest_dir)
    data = read_checkpoint(checkpoint)
    data.pop("train_state", None)
    data["model_state_dict"] = {name: tensor.half() if tensor.is_floating_point() else tensor
                                for name, tensor in data["model_state_dict"].items()}
    options = {**data.get("decoding", {}), **(decoding or {})}
    files = {key: Path(src) for key, src in (("lm", lm), ("lexicon", lexicon)) if src}
    for key, src in files.items():
        if not src.is_file():
            raise CheckpointError(f"{src}: {key} file not found")
        options[key] = src.name
    checked = merge(DecodingOptions(), options)  # unknown names and bad values fail here, not at transcription
    data["decoding"] = {key: getattr(checked, key) for key in options}

    buffer = io.BytesIO()
    torch.save(data, buffer)
    if buffer.tell() > MAX_MODEL_BYTES:
        raise CheckpointError(f"{checkpoint}: exported model would be {buffer.tell() / 1e6:.1f} MB, "
                              f"over the {MAX_MODEL_BYTES / 1e6:.0f} MB limit for the bundled model")
    package = buffer.tell() + sum(src.stat().st_size for src in files.values())
    if package > MAX_PACKAGE_BYTES:
        raise CheckpointError(f"{checkpoint}: model + LM + lexicon would be {package / 1e6:.1f} MB, "
                              f"over the {MAX_PACKAGE_BYTES / 1e6:.0f} MB limit for the bundled model")
    make_folder(dest_dir)
    for src in files.values():
        with atomic_path(dest_dir / src.name) as tmp:
            shutil.copyfile(src, tmp)
    save_atomic(data, dest_dir / MODEL_FILE)
    return dest_dir / MODEL_FILE
