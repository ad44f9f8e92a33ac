"""Bounded admission, a FIFO queue, and a pool of model workers sized to the cores.

    scheduler = Scheduler(recognizer, ServeConfig(workers=2, queue_size=32))
    await scheduler.start()                       # in the server's event loop
    if not scheduler.try_admit(): ...             # full: answer 503, Retry-After: scheduler.retry_after()
    try:
        hyp = await scheduler.transcribe(path)    # Hypothesis; raises AudioError
    finally:
        scheduler.release()

A request holds one of `queue_size` slots from before its upload is read until its
answer is ready, so uploads, waiting and running requests together are bounded (and
so is the disk they use: queue_size x max_upload_mb). Admitted requests wait in
one FIFO queue; each of `workers` coroutines takes the oldest and runs it in a thread
of its own (torch and the beam decoder release the GIL, so the threads use the cores).

Cancelling the coroutine awaiting `transcribe` (the client went away) drops a
request that is still waiting; one that is running stops after the model call in
progress (long files take several).
"""

from __future__ import annotations

import asyncio
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


@dataclass
class Job:
    path: Path
    seconds: float  # audio duration
    future: asyncio.Future  # Hypothesis, or the exception transcribing raised
    gone: threading.Event = field(default_factory=threading.Event)  # the client left: seen by the worker thread


class Scheduler:
    """The queue between the HTTP handlers and the model's worker threads."""

    def __init__(self, recognizer: Recognizer, config: ServeConfig):
        self.recognizer = recognizer
        self.config = config
        self.admitted = 0  # requests holding a slot
        self.running = 0  # requests in the model now
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

    async def transcribe(self, path: Path, seconds: float = 0.0) -> Hypothesis:
        job = Job(path, seconds, asyncio.get_running_loop().create_future())
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
        """The oldest live job and, if it is short, the short jobs waiting behind it (up to max_batch)."""
        live = [job for job in self._waiting if not job.future.cancelled()]
        batch = [live[0]]
        if live[0].seconds <= 20.0:
            batch += [job for job in live[1:] if job.seconds <= 20.0][: self.config.max_batch - 1]
        taken = set(map(id, batch))
        self._waiting = deque(job for job in live if id(job) not in taken)
        return batch

    async def _run_batch(self, batch: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        self.running += len(batch)
        start = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._pool, self.recognizer.transcribe_batch, [j.path for j in batch],
                                                 lambda: all(j.gone.is_set() for j in batch))
        except Cancelled:
            return
        except Exception as err:
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        finally:
            self.running -= len(batch)
        took = (time.perf_counter() - start) / len(batch)
        self.seconds_per_request = 0.8 * self.seconds_per_request + 0.2 * took if self.seconds_per_request else took
        for job, result in zip(batch, results):
            if not job.future.done():
                if isinstance(result, Exception):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            async with self._wakeup:
                await self._wakeup.wait_for(lambda: self.waiting > 0)
                batch = self._next_batch()
            if len(batch) > 1:
                await self._run_batch(batch)
                continue
            job = batch[0]
            self.running += 1
            start = time.perf_counter()
            try:
                result = await loop.run_in_executor(self._pool, self.recognizer.transcribe, job.path, job.gone.is_set)
            except Cancelled:
                continue
            except Exception as err:  # AudioError, or a bug (the app answers a JSON 500); the server goes on
                if not job.future.done():
                    job.future.set_exception(err)
                continue
            finally:
                self.running -= 1
            took = time.perf_counter() - start
            self.seconds_per_request = 0.8 * self.seconds_per_request + 0.2 * took if self.seconds_per_request else took
            if not job.future.done():
                job.future.set_result(result)
