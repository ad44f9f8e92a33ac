"""The one base class of every error a user can cause and fix.

Each module raises its own subclass (AudioError, ConfigError, ...) so callers can
catch precisely, but the `asr` command catches only `AsrError` and prints its
message as one `error: ...` line. Anything else escaping is a bug and keeps its
traceback.
"""


class AsrError(Exception):
    """Bad input, files or settings; the message names the file or option and what is wrong."""
