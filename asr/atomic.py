"""Atomic file writes: a reader sees the old file or the whole new one, never a torn one.

    with atomic_write("out.jsonl") as f:      # text; "wb" for bytes
        f.write(...)
    with atomic_path("model.pt") as tmp:       # for writers that want a file name
        torch.save(obj, tmp)

Both write to a hidden temp file in the destination's folder (same file system, so
the final `os.replace` is atomic), fsync it, then rename it over the destination.
If the block raises or the process dies, the destination is untouched and the temp
file is deleted (or, after a kill, left as `.NAME.tmpPID`, which nothing reads).
A destination that cannot be written (its folder is a file, it is a folder, read-only,
disk full) is a WriteError naming it; `make_folder` does the same for output folders.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from asr.errors import AsrError


class WriteError(AsrError):
    """An output file or folder that cannot be written; the message names it and why."""


def make_folder(path: str | os.PathLike) -> Path:
    """Make the output folder `path` (and its parents) unless it exists; WriteError if it cannot be one."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise WriteError(f"{path}: is a file, not a folder") from None
    except OSError as err:
        raise WriteError(f"{path}: cannot make this folder ({err.strerror}: {err.filename})") from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to `path`; rename it over `path` when the block succeeds. The temp
    file is created first, so a destination that cannot be written fails before the work."""
    path = Path(path)
    if path.is_dir():
        raise WriteError(f"{path}: is a folder; a file goes here")
    make_folder(path.parent)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        try:
            tmp.touch()
        except OSError as err:
            raise WriteError(f"{path}: cannot write it ({err.strerror})") from None
        try:
            yield tmp
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:  # the writer's or ours, while writing the temp file (disk full, ...)
            if err.errno not in _WRITE_ERRORS and err.filename not in (tmp, str(tmp), path, str(path)):
                raise  # not about this output: someone else's error
            raise WriteError(f"{path}: cannot write it ({err.strerror})") from None
    finally:
        tmp.unlink(missing_ok=True)


_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)  # whoever raised them, the output failed


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file next to `path` (`mode` "w" or "wb"); rename it over `path` on success."""
    with atomic_path(path) as tmp:
        try:
            f = open(tmp, mode, encoding=None if "b" in mode else encoding)
        except OSError as err:
            raise WriteError(f"{path}: cannot write it ({err.strerror})") from None
        with f:
            yield f
