"""One run at a time in a folder: `asr train` holds EXP/run.lock while it uses EXP.

    with lock_folder(exp_dir):          # FolderInUse if another process holds it
        ...train...

The lock is `fcntl.flock` on EXP/run.lock, which holds the owner's process id so that a
second run can say whom it is waiting for. The kernel drops the lock when its process ends,
however it ends, so a lock file left by a dead process (kill -9, a crash) is simply taken
over: there is nothing stale to clean up. Works on local file systems and NFS v4.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from asr.errors import AsrError

LOCK_NAME = "run.lock"


class FolderInUse(AsrError):
    """The experiment folder is locked by another run, or cannot be made or locked at all."""


@contextlib.contextmanager
def lock_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Make `folder` if needed and hold its lock for the block; yields the lock file's path."""
    folder = Path(folder)
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise FolderInUse(f"{folder}: cannot use it as the experiment folder ({err.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip() or "unknown"
            raise FolderInUse(f"{folder}: in use by another run (process {owner}); wait for it to end or stop it, "
                              "or pick another --exp-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
