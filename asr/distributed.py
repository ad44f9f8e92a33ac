"""Data-parallel training across processes, GPUs and nodes, as started by `torchrun`.

    torchrun --nproc_per_node=4 -m asr train --config conf.yaml --exp-dir EXP

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE in each process's environment;
`Distributed.from_env()` reads them (a plain `asr train` is rank 0 of 1) and
`join()` starts the process group: NCCL between GPUs, gloo on CPUs. Training
then wraps the model in DistributedDataParallel, gives each rank every
`world_size`-th batch, and lets only rank 0 write files and progress bars.
The helpers below are no-ops in a single process.

A rank that fails leaves at once, whatever the failure (asr.cli calls `report_failure`,
then `exit_rank`): an `error:` line of its own (and a bug's traceback, once, from the rank
that met it), never Python's finalization (see `exit_without_finalizing`). The other ranks'
next collective then fails because the connection to it closed (`lost_peer`): each says so
in one line and leaves too, unless torchrun's SIGTERM reached it first.
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job."""

    rank: int = 0  # 0 .. world_size - 1, over all nodes
    local_rank: int = 0  # index on this node: which GPU to use
    world_size: int = 1

    @classmethod
    def from_env(cls) -> Distributed:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls()
        return cls(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), world_size)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and progress bars."""
        return self.rank == 0

    def join(self, device: torch.device) -> bool:
        """Start the process group unless there is one (or no other process).
        Returns whether this call started it (and so should end it with `leave`)."""
        if not self.enabled or dist.is_initialized():
            return False
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return True

    def leave(self) -> None:
        dist.destroy_process_group()

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The module to train: DistributedDataParallel around `model` when there are several ranks."""
        if not self.enabled:
            return model
        device_ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def gather(self, obj) -> list:
        """Every rank's `obj`, in rank order (on every rank)."""
        if not self.enabled:
            return [obj]
        objects = [None] * self.world_size
        dist.all_gather_object(objects, obj)
        return objects

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum of `values` over all ranks."""
        if not self.enabled:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def barrier(self) -> None:
        """Wait here until every rank has arrived (e.g. while rank 0 evaluates)."""
        if self.enabled:
            dist.barrier()


def exit_without_finalizing(code: int) -> NoReturn:
    """End a process that trained with several ranks, skipping Python's interpreter finalization.

    A gloo worker thread frees its last collective (the tensors of `gather`/`sum`) a moment
    after the collective has returned, and needs the GIL for it. If the main thread is already
    finalizing the interpreter by then, the worker thread aborts the process (SIGABRT,
    "terminate called without an active exception") and torchrun reports a good run as
    failed: about 1 run in 30 of tests/test_recipe_librispeech.py. (`destroy_process_group`
    does not free the gloo worker threads.) `asr train` calls this when a rank's run is over,
    well or with an error (checkpoints saved, process group destroyed): it flushes stdout and
    stderr and leaves with `code`.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def lost_peer(err: BaseException) -> bool:
    """Whether `err` is a collective that failed because another rank is gone (its connection
    closed or reset, or NCCL's own error): that rank says why; this one only stops too."""
    return isinstance(err, dist.DistError) or (isinstance(err, RuntimeError) and "gloo/transport/" in str(err))


def report_failure(err: BaseException) -> None:
    """Say on stderr why this rank of a torchrun job stops on `err`, an exception nobody caught:
    one `error: rank R: ...` line, after the traceback when it is a bug of its own (once, from this
    rank), without one when a collective failed because another rank is gone (`lost_peer`)."""
    rank = Distributed.from_env().rank
    if lost_peer(err):
        detail = str(err).strip().splitlines()[0].split("] ", 1)[-1]  # gloo: "[.../pair.cc:547] Connection ..."
        sys.stderr.write(f"error: rank {rank}: stopped because another rank of the job ended ({detail})\n")
        return
    traceback.print_exception(err)
    sys.stderr.write(f"error: rank {rank}: {type(err).__name__}: {err} (a bug: the traceback above)\n")


def exit_rank(code: int) -> None:
    """Leave with `code` through `exit_without_finalizing` when this process is one of several
    ranks (torchrun); return otherwise. `asr train` calls it once its run is over."""
    if Distributed.from_env().enabled:
        exit_without_finalizing(code)
