"""Time each part of `asr transcribe FILE` in this fresh process; print {part: seconds} as JSON.

    python benchmarks/startup_parts.py FILE

The parts worker of benchmarks.startup, which runs it by path with the working folder and
PYTHONPATH set to the checkout whose asr it measures (this one's, or --before's). So it is a
standalone file, not run as part of the benchmarks package: it imports only asr (whichever
comes first on sys.path) and the standard library, never `benchmarks`. Each part is timed in
the order a transcription runs it; the last one, loading the VAD, only a file longer than a
segment needs. startup.py imports PARTS from here for its table.
"""

import json
import sys
import time

PARTS = ["imports (command line)", "parser", "imports (torch, pipeline)", "model load", "decoder build",
         "first decode", "VAD load (long files only)"]


def parts(path: str) -> dict[str, float]:
    """Seconds of each of PARTS, in a process that has imported nothing of asr yet."""
    times, start = {}, time.perf_counter()

    def lap(name: str) -> None:
        nonlocal start
        now = time.perf_counter()
        times[name], start = now - start, now

    from asr import cli
    lap("imports (command line)")
    args = cli.build_parser().parse_args(["transcribe", path])
    lap("parser")
    from asr.checkpoint import load_model
    from asr.decode import make_decoder
    from asr.pretrained import default_model_path
    from asr.threads import set_threads
    from asr.transcribe import transcribe
    lap("imports (torch, pipeline)")
    set_threads(args.threads)
    precision = {"precision": args.precision} if hasattr(args, "precision") else {}  # an older checkout: none
    loaded = load_model(default_model_path(), **precision)
    lap("model load")
    decoder = make_decoder(loaded.decoding, loaded.tokenizer)
    lap("decoder build")
    transcribe(loaded, path, decoder)
    lap("first decode")
    from asr.vad import load_vad
    load_vad("silero")
    lap("VAD load (long files only)")
    return times


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/startup_parts.py FILE")
    print(json.dumps(parts(sys.argv[1])))
