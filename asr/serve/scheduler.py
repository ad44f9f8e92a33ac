"""Bounded admission, a FIFO queue, a pool of model workers sized to the cores, and batching.

    scheduler = Scheduler(recognizer, ServeConfig(workers=2, queue_size=32, max_batch=4))
    await scheduler.start()                       # in the server's event loop
    if not scheduler.try_admit(): ...             # full: answer 503, Retry-After: scheduler.retry_after()
    try:
        hyp = await scheduler.transcribe(path, seconds)   # Hypothesis; raises AudioError
    finally:
        scheduler.release()

A request holds one of `queue_size` slots from the moment its upload has arrived until
its answer is ready, so waiting and running requests together are bounded (and so is
the disk their saved files use: queue_size x max_upload_mb); uploads still arriving are
bounded apart (asr.serve.limits), so that slow clients cannot fill this queue. Admitted
requests wait in one FIFO queue. Each of `workers` coroutines takes the oldest and, if it is short (at most
BATCH_SECONDS), up to `max_batch - 1` more short ones that are already waiting (never
waiting for more to arrive), and runs them through the model in one call, in a thread
of its own (torch and the beam decoder release the GIL, so the threads use the cores).
benchmarks/README.md has the measurement that made batching the default.

Cancelling the coroutine awaiting `transcribe` (the client went away) drops a request
that is still waiting; a running call stops after its model call in progress if every
request in it has gone (a long recording takes several).
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from asr.decode import Hypothesis
from asr.serve import ServeConfig
from asr.serve.recognizer import Cancelled, Recognizer

BATCH_SECONDS = 20.0  # longer requests run alone: cut into several segments, they are a batch already


@dataclass
class Job:
    path: Path
    seconds: float  # audio duration
    future: asyncio.Future  # Hypothesis, or the exception transcribing raised
    gone: threading.Event = field(default_factory=threading.Event)  # the client left: seen by the worker thread
    recognizer: Recognizer | None = None  # the model asked for (`model=`); None: the scheduler's


class Scheduler:
    """The queue between the HTTP handlers and the model's worker threads."""

    def __init__(self, recognizer: Recognizer, config: ServeConfig):
        self.recognizer = recognizer
        self.config = config
        self.admitted = 0  # requests holding a slot
        self.running = 0  # requests in the model now
        self.calls = 0  # model calls made (each for one request or a batch)
        self.seconds_per_request = 0.0  # moving average of a worker's wall time per request (0: none yet)
        self._waiting: deque[Job] = deque()
        self._wakeup: asyncio.Condition | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._workers: list[asyncio.Task] = []

    async def start(self) -> None:
        self._wakeup = asyncio.Condition()
        self._pool = ThreadPoolExecutor(self.config.workers, thread_name_prefix="asr-worker")
        self._workers = [asyncio.create_task(self._work()) for _ in range(self.config.workers)]

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for job in self._waiting:
            job.future.cancel()
        self._waiting.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def try_admit(self) -> bool:
        """Take a slot if one is free; False means answer 503."""
        if self.admitted >= self.config.queue_size:
            return False
        self.admitted += 1
        return True

    def release(self) -> None:
        self.admitted -= 1

    def retry_after(self) -> int:
        """Seconds until the requests in the server now are likely done (at least 1)."""
        return max(1, math.ceil(self.seconds_per_request * self.admitted / self.config.workers))

    @property
    def waiting(self) -> int:
        return sum(not job.future.cancelled() for job in self._waiting)

    async def transcribe(self, path: Path, seconds: float, recognizer: Recognizer | None = None) -> Hypothesis:
        """Queue `path` for `recognizer` (default: the scheduler's) and await its Hypothesis."""
        job = Job(path, seconds, asyncio.get_running_loop().create_future(), recognizer=recognizer or self.recognizer)
        async with self._wakeup:
            self._waiting.append(job)
            self._wakeup.notify()
        try:
            return await job.future
        except asyncio.CancelledError:
            job.gone.set()
            job.future.cancel()
            raise

    def _next_batch(self) -> list[Job]:
        """The oldest live job and, if it is short, the short jobs for the same model waiting behind it
        (up to max_batch)."""
        live = [job for job in self._waiting if not job.future.cancelled()]
        batch = live[:1]
        if batch[0].seconds <= BATCH_SECONDS:
            batch += [job for job in live[1:] if job.seconds <= BATCH_SECONDS
                      and job.recognizer is batch[0].recognizer][: self.config.max_batch - 1]
        taken = set(map(id, batch))
        self._waiting = deque(job for job in live if id(job) not in taken)
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            async with self._wakeup:
                await self._wakeup.wait_for(lambda: self.waiting > 0)
                batch = self._next_batch()
            self.running += len(batch)
            self.calls += 1
            start = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._pool, batch[0].recognizer.transcribe,
                                                     [j.path for j in batch], functools.partial(_all_gone, batch))
            except Cancelled:
                continue
            except Exception as err:  # a bug: each client gets it (the app answers a JSON 500), the server goes on
                results = [err] * len(batch)
            else:
                took = (time.perf_counter() - start) / len(batch)
                self.seconds_per_request = (0.8 * self.seconds_per_request + 0.2 * took if self.seconds_per_request
                                            else took)
            finally:
                self.running -= len(batch)
            for job, result in zip(batch, results):
                if job.future.done():
                    continue
                if isinstance(result, Exception):  # AudioError: this file is unusable
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)


def _all_gone(jobs: list[Job]) -> bool:
    """Whether every client of a model call has left (asked from the worker thread)."""
    return all(job.gone.is_set() for job in jobs)
