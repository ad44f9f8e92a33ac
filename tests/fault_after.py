"""Run an `asr` command as one torchrun rank and make one rank fail at a chosen call, for the
tests of how every rank leaves (test_rank_exit.py, test_ddp.py).

    torchrun ... tests/fault_after.py RANK MODULE:FUNCTION N FAULT ASR-ARGS...
    torchrun --nproc_per_node=2 tests/fault_after.py 1 asr.transcribe:_append_line 2 bug transcribe DIR --output F

On rank RANK only (the others run the command untouched), the Nth call of MODULE.FUNCTION (a
module-level function or a class's method, looked up by its callers at call time) does FAULT:
    bug      raises RuntimeError instead of running: an unexpected exception, as a bug would
    error    raises an AsrError instead of running: a failure the user can fix, met by one rank only
    SIGKILL  runs, then the rank kills itself (the kernel's OOM killer, `kill -9`)
The product has no such hooks: the wrapping happens here, before `asr.cli.main` runs.
"""

from __future__ import annotations

import functools
import os
import signal
import sys

from signal_after import resolve

from asr.cli import main
from asr.errors import AsrError


class InjectedError(AsrError):
    """The `error` fault."""


def fault_after(target: str, calls: int, fault: str) -> None:
    """Wrap `target` ("module:function" or "module:Class.method") so that its `calls`-th call does `fault`."""
    owner, name, function = resolve(target)
    count = 0

    @functools.wraps(function)
    def counted(*args, **kwargs):
        nonlocal count
        count += 1
        if count == calls and fault == "bug":
            raise RuntimeError(f"injected bug in {target}")
        if count == calls and fault == "error":
            raise InjectedError(f"injected error in {target}")
        result = function(*args, **kwargs)
        if count == calls and fault == "SIGKILL":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, counted)


if __name__ == "__main__":
    rank, target, calls, fault, *argv = sys.argv[1:]
    assert fault in ("bug", "error", "SIGKILL"), fault
    if os.environ.get("RANK", "0") == rank:
        fault_after(target, int(calls), fault)
    sys.exit(main(argv))
