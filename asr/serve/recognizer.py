"""The server's model: one loaded checkpoint, a decoder per worker, and the one call into asr.transcribe.

    loaded = load_model(path)
    recognizer = Recognizer(loaded, loaded.decoding, workers=2)   # or options with flags on top
    [hyp] = recognizer.transcribe([wav_path])   # Hypothesis with timed words, or AudioError

`transcribe` is the only place the server calls the transcription library: when
asr.transcribe changes, only this method changes. Several short requests can be
transcribed in one call, their segments batched through the model together: on 2
CPU cores that raised throughput under load (benchmarks/README.md, `asr serve`).

Thread safety: the model's weights are only read (inference mode), so worker
threads share one model; a beam decoder keeps its search state in itself, so each
call borrows a decoder of its own from a pool of `workers` decoders.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from asr.audio import SAMPLE_RATE, AudioError
from asr.checkpoint import LoadedModel
from asr.decode import Decoder, DecodingOptions, Hypothesis, make_decoder
from asr.pretrained import PRETRAINED_DIR
from asr.transcribe import TranscribeOptions, iter_transcripts

CARD_FILE = "MODEL_CARD.md"  # read next to the checkpoint, if there


class Cancelled(Exception):
    """The client has gone: its transcription was stopped part-way."""


class Recognizer:
    """A checkpoint ready to transcribe from several threads at once."""

    def __init__(self, loaded: LoadedModel, decoding: DecodingOptions, workers: int = 1, name: str | None = None):
        self.loaded = loaded
        self.decoding = decoding
        self.name = name  # the id /v1/models lists (an adapted model's "adapted/NAME"); None: from the path
        self._decoders: queue.Queue[Decoder] = queue.Queue()
        for _ in range(workers):  # built up front: a beam decoder loads its LM (~0.1 s)
            self._decoders.put(make_decoder(decoding, loaded.tokenizer))

    @property
    def model_id(self) -> str:
        """The name /v1/models lists: `name` if given, 'pretrained' for the bundled model, else FOLDER/STEM
        of the checkpoint."""
        if self.name:
            return self.name
        path = Path(self.loaded.path).resolve()
        return "pretrained" if path.parent == PRETRAINED_DIR else f"{path.parent.name}/{path.stem}"

    @contextmanager
    def _decoder(self) -> Iterator[Decoder]:
        decoder = self._decoders.get()
        try:
            yield decoder
        finally:
            self._decoders.put(decoder)

    def transcribe(self, paths: list[Path], should_stop: Callable[[], bool] = lambda: False
                   ) -> list[Hypothesis | AudioError]:
        """Transcripts of the audio files `paths`, with timed words (AudioError for an unusable one).

        The files' segments go through the model together, `batch_segments` at a time (at
        least one per file). `should_stop` is asked after each model call; when it says True
        the run ends by raising Cancelled (the clients have gone, nobody wants the result).
        """
        def check(_seconds: float) -> None:
            if should_stop():
                raise Cancelled()

        options = TranscribeOptions(batch_segments=max(TranscribeOptions.batch_segments, len(paths)))
        with self._decoder() as decoder:
            results = dict(iter_transcripts(self.loaded, paths, decoder, options, on_audio=check))
        return [results[path] for path in paths]

    def describe(self) -> dict:
        """What /v1/models says about the model: card summary, architecture, decoding settings."""
        path = Path(self.loaded.path)
        model = self.loaded.model
        decoding = dataclasses.asdict(self.decoding)
        for key, value in decoding.items():
            if key in ("lm", "lexicon") and value:  # file names only: the server's folders are nobody's business
                decoding[key] = Path(value).name
            elif isinstance(value, float) and not math.isfinite(value):  # JSON has no infinity
                decoding[key] = str(value)
        return {
            "id": self.model_id,
            "object": "model",
            "created": int(path.stat().st_mtime) if path.exists() else 0,
            "owned_by": "asr",
            "card": card_summary(path.parent / CARD_FILE),
            "architecture": {
                "parameters": sum(p.numel() for p in model.parameters()),
                "model_config": dataclasses.asdict(model.config),
                "vocabulary": len(self.loaded.tokenizer),
                "sample_rate": SAMPLE_RATE,
                "frame_seconds": self.loaded.frame_seconds,
            },
            "decoding": decoding,
        }


def card_summary(path: Path) -> dict | None:
    """Title and introduction (the text before the first '##' section) of a model card, if there is one."""
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), path.stem)
    intro = re.split(r"^## ", text, maxsplit=1, flags=re.MULTILINE)[0]
    intro = re.sub(r"^# .*$", "", intro, flags=re.MULTILINE)
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", intro) if p.strip()]
    return {"file": path.name, "title": title, "summary": "\n\n".join(paragraphs)}

