"""`asr demo` (what `make demo` runs): transcribe speech the project makes itself.

A few sentences are spoken by espeak-ng in several voices into a temporary
folder (or --audio-dir), transcribed with the bundled model (or --model) and its
stored decoding options, and printed next to their texts with the overall WER
and CER. None of the sentences is a speechocean762 training transcript.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from asr.atomic import make_folder
from asr.checkpoint import load_model
from asr.decode import make_decoder
from asr.evaluate import score
from asr.pretrained import default_model_path
from asr.synth.corpus import make_utterance
from asr.synth.job import SynthJob
from asr.synth.voices import SynthesisError
from asr.transcribe import transcribe

SAMPLES = [  # (text, espeak-ng voice)
    ("the cat sat on the mat", "en-us"),
    ("open the red door", "en-gb"),
    ("four six two nine", "en-us+f3"),
    ("she sells sea shells by the sea", "en-gb-scotland"),
    ("my brother found a yellow kite", "en-029+m3"),
    ("we will go to the park after lunch", "en-us+m7"),
]


def sample_jobs() -> list[SynthJob]:
    """The demo sentences as synthesis jobs: a slow, clear reading with a little silence around."""
    return [
        SynthJob(index=i, text=text.upper(), engine="espeak", voice=voice, tempo=0.85, pitch=1.0, word_gap=2,
                 pad_start=0.3, pad_end=0.3, gain=0.7, noise_db=-60.0, seed=i)
        for i, (text, voice) in enumerate(SAMPLES)
    ]


def run_demo(model: str | Path | None = None, audio_dir: str | Path | None = None, out=sys.stdout) -> dict:
    """Synthesize, transcribe and score the samples; print the comparison. Returns the score summary."""
    if shutil.which("espeak-ng") is None:
        raise SynthesisError("espeak-ng is not installed; the demo speaks its sample sentences with it "
                             "(apt-get install espeak-ng, or make system-deps)")
    loaded = load_model(model or default_model_path())
    options = loaded.decoding
    decoder = make_decoder(options, loaded.tokenizer)
    with tempfile.TemporaryDirectory(prefix="asr-demo-") as tmp:
        folder = Path(audio_dir or tmp)
        make_folder(folder)
        utterances = [make_utterance(job, folder, folder, suffix=".wav") for job in sample_jobs()]
        print(f"model: {loaded.path} ({loaded.model.num_parameters() / 1e6:.1f}M parameters, "
              f"{options.decoder} decoding); audio: {len(utterances)} sentences by espeak-ng", file=out)
        hyps = {}
        for utt, (_, voice) in zip(utterances, SAMPLES):
            hyps[utt.id] = transcribe(loaded, folder / utt.audio_path, decoder)
            print(f"\n  voice {voice}\n  ref: {utt.text.lower()}\n  hyp: {hyps[utt.id].text}", file=out)
    summary, _ = score(utterances, hyps)
    print(f"\nWER {summary['wer']:.1%}  CER {summary['cer']:.1%}  ({summary['utterances']} sentences, "
          f"{summary['words']} words)", file=out)
    return summary
