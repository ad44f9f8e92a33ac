"""Atomic file writes: a reader sees the old file or the whole new one, never a torn one.

    with atomic_write("out.jsonl") as f:      # text; "wb" for bytes
        f.write(...)
    with atomic_path("model.pt") as tmp:       # for writers that want a file name
        torch.save(obj, tmp)

Both write to a hidden temp file in the destination's folder (same file system, so
the final `os.replace` is atomic), fsync it, then rename it over the destination.
If the block raises or the process dies, the destination is untouched and the temp
file is deleted (or, after a kill, left as `.NAME.tmpPID`, which nothing reads).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to `path`; rename it over `path` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file next to `path` (`mode` "w" or "wb"); rename it over `path` on success."""
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if "b" in mode else encoding) as f:
        yield f
