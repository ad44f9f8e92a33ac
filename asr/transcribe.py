"""Transcribe audio files with a trained model: `asr transcribe FILE_OR_FOLDER... --model CKPT`.

`transcribe_file` is the library entry point: a path in, a Hypothesis out.
The CLI prints one line per file (`path<TAB>text`) or JSON lines with
`--format jsonl`. A file that cannot be read is reported on stderr in one line
and the others are still transcribed; the exit status is then 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from asr.audio import AudioError, load_audio
from asr.checkpoint import LoadedModel
from asr.data.importers import AUDIO_EXTENSIONS
from asr.decode import Decoder, Hypothesis
from asr.features import LogMel


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given; folders replaced by the audio files under them (sorted)."""
    paths = []
    for item in map(Path, inputs):
        if item.is_dir():
            paths.extend(sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS))
        else:
            paths.append(item)
    return paths


@torch.no_grad()
def transcribe_file(loaded: LoadedModel, path: str | Path, decoder: Decoder) -> Hypothesis:
    """Decode one file. Raises asr.audio.AudioError for unusable audio."""
    audio = torch.from_numpy(load_audio(path))  # (samples,)
    features = LogMel(loaded.features)(audio).unsqueeze(0)  # (1, frames, mels)
    device = next(loaded.model.parameters()).device
    log_probs, lengths = loaded.model(features.to(device), torch.tensor([features.shape[1]]))
    return decoder.decode(log_probs, lengths)[0]


def format_result(path: Path, hyp: Hypothesis, fmt: str) -> str:
    if fmt == "jsonl":
        return json.dumps({"file": str(path), "text": hyp.text})
    return f"{path}\t{hyp.text}"


def transcribe_many(loaded: LoadedModel, paths: list[Path], decoder: Decoder, fmt: str = "txt",
                    out=sys.stdout) -> int:
    """Transcribe each path, printing results as they finish. Returns the number of failures."""
    failures = 0
    for path in paths:
        try:
            hyp = transcribe_file(loaded, path, decoder)
        except AudioError as err:
            print(f"error: {err}", file=sys.stderr)
            failures += 1
            continue
        print(format_result(path, hyp, fmt), file=out, flush=True)
    return failures
