"""Run an `asr` command in this process and send a signal right after a chosen call, for the
kill-and-resume tests (test_train.py, test_transcribe.py, test_synth_corpus.py).

    python tests/signal_after.py MODULE:FUNCTION N SIGNAL self|group ASR-ARGS...
    python tests/signal_after.py asr.metrics_logger:MetricsLogger.log_window 5 SIGKILL group train --exp-dir exp

Right after the Nth call of MODULE.FUNCTION returns (a module-level function or a class's
method, looked up by its callers at call time), SIGNAL goes to this process ("self", as a job scheduler's SIGTERM
does) or to its whole process group, DataLoader workers included ("group", as Ctrl-C or
`kill -9 -PGID` do). The target `import:MODULE` (N = 1) sends it as MODULE starts to be
imported (a Ctrl-C while a command loads torch: `import:torch.functional`). Start it in a
session of its own (`start_new_session=True`) so that the group holds only this run. SIGSTOP
lets a test look at the files at that point (`os.waitpid(pid, os.WUNTRACED)`) and then SIGCONT the run.

The point is a signal at a known place (the 5th logged step, the 5th line written) rather
than whenever a polling test gets there: the test knows exactly what was written before it,
and there is no race to lose (the run finishing first, a checkpoint landing in between).
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import os
import signal
import sys

from asr.cli import main


class SignalOnImport(importlib.abc.MetaPathFinder):
    """Sends a signal when `module` is looked for (its import begins), then lets the usual finders find it."""

    def __init__(self, module: str, send) -> None:
        self.module, self.send = module, send

    def find_spec(self, fullname, path, target=None):
        if fullname == self.module:
            sys.meta_path.remove(self)
            self.send()
        return None



def resolve(target: str) -> tuple[object, str, object]:
    """"module:function" or "module:Class.method": (the module or class holding it, its name, it)."""
    module_name, _, dotted = target.partition(":")
    *classes, name = dotted.split(".")
    owner = importlib.import_module(module_name)
    for attribute in classes:
        owner = getattr(owner, attribute)
    return owner, name, getattr(owner, name)

def signal_after(target: str, calls: int, signum: int, to_group: bool) -> None:
    """Wrap `target` ("module:function" or "module:Class.method") so that its `calls`-th return
    sends `signum`; or, for "import:module", send it when that module's import begins."""
    def send():
        if to_group:
            os.killpg(os.getpgid(0), signum)
        else:
            os.kill(os.getpid(), signum)

    if target.startswith("import:"):
        assert calls == 1, "an import happens once"
        sys.meta_path.insert(0, SignalOnImport(target.removeprefix("import:"), send))
        return
    owner, name, function = resolve(target)
    count = 0

    @functools.wraps(function)
    def counted(*args, **kwargs):
        nonlocal count
        result = function(*args, **kwargs)
        count += 1
        if count == calls:
            send()
        return result

    setattr(owner, name, counted)


if __name__ == "__main__":
    target, calls, name, whom, *argv = sys.argv[1:]
    assert whom in ("self", "group"), whom
    signal_after(target, int(calls), getattr(signal, name), whom == "group")
    sys.exit(main(argv))
