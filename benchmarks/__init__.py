"""Speed, memory and accuracy benchmarks of asr, each against a peer where there is one (README.md has the figures).

Each benchmark is a module with a `main()` and argparse; run it from the repository root:

    python -m benchmarks.NAME [ARGS]      e.g. python -m benchmarks.train_step --help

The modules share benchmarks.common (paths, the machine line, timing, peak memory),
benchmarks.recordings (the long recordings joined from dev utterances), benchmarks.peers
(Whisper tiny.en and pocketsphinx in their own venv) and benchmarks.accuracy's text
normalization. The worker files that run in another interpreter or against another
checkout's asr (peer_worker.py, pyctcdecode_worker.py, startup_parts.py) are run by path and
import nothing from this package. This package is not installed with asr (pyproject.toml
packages only asr*); it runs from a checkout.
"""
