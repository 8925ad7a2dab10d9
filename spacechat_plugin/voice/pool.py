"""Where transcription and synthesis run: worker processes, never the event loop.

whisper.cpp, Piper and FFmpeg's decoders hold the GIL for long stretches (a third of a second at
a time, measured), so threads would stall the loop that serves every request: the work runs in
processes (`spawn`, so no lock held by a server thread is copied into them). The pool is sized
from config (`voice.workers`), and at most `voice.queue` jobs wait beyond the running ones: past
that a job is refused at once (`Busy`, which the API answers 503 with Retry-After), never queued
without end. Quick checks of an upload run in a process of their own, so an upload is not stuck
behind long transcriptions. The processes run at a lower priority than the server
(`voice.nice`, worker.lower_priority), so serving requests comes first: from the moment each one
exists (`_Spawn`), not from when its initializer runs: a spawned interpreter first imports the
server's main module and what it imports (0.15 CPU-s per process, measured), which at the
server's priority took that share from serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any, TypeVar

from .worker import initializer, lower_priority

log = logging.getLogger("spacechat.voice")

T = TypeVar("T")


class Busy(Exception):
    """The pool is full; try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the voice workers are busy; try again in {retry_after} s")
        self.retry_after = retry_after


class _Spawn(SpawnContext):
    """The `spawn` start method, with each new process put at the workers' priority by the
    server as soon as it has a pid (before it has imported anything)."""

    def __init__(self, nice: int) -> None:
        super().__init__()
        self.nice = nice

    def Process(self, *args: Any, **kwargs: Any) -> SpawnProcess:  # type: ignore[override]  # a method, as the executor calls it
        process = _LowPriorityProcess(*args, **kwargs)
        process.nice = self.nice
        return process


class _LowPriorityProcess(SpawnProcess):
    nice = 0

    def start(self) -> None:
        super().start()
        if self.pid is not None:
            lower_priority(self.pid, self.nice)


class Lane:
    """One executor with a bound on the jobs it holds (running and waiting)."""

    def __init__(self, name: str, workers: int, waiting: int, nice: int = 0) -> None:
        self.name, self.workers, self.limit, self.nice = name, workers, workers + waiting, nice
        self.held = 0
        self.seconds = 1.0  # a running average of how long a job takes, for Retry-After
        self._executor: ProcessPoolExecutor | None = None
        self._warmed: set[tuple[str, tuple[Any, ...]]] = set()
        self._warming: set[asyncio.Future[Any]] = set()
        self.warm_jobs_done = 0  # warming jobs finished since the processes (re)started

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=_Spawn(self.nice),
                initializer=initializer,
                initargs=(self.nice,),
            )
        return self._executor

    def retry_after(self) -> int:
        return max(1, round(self.seconds * (self.held - self.workers + 1) / self.workers))

    def reserve(self) -> Reservation:
        """Hold a place for a job to run later, or raise Busy."""
        if self.held >= self.limit:
            raise Busy(self.retry_after())
        self.held += 1
        return Reservation(self)

    async def run(self, reservation: Reservation | None, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in a worker process (in the place `reservation` holds, or a new one)."""
        place = reservation if reservation is not None else self.reserve()
        started = time.monotonic()
        try:
            future = self._pool().submit(fn, *args)
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            # A worker died (killed, or crashed in native code): start the processes again.
            self.reset()
            raise
        finally:
            self.seconds = 0.8 * self.seconds + 0.2 * (time.monotonic() - started)
            place.release()

    def warm(self, fn: Callable[..., Any], *args: Any) -> None:
        """Have the worker processes start and run `fn(*args)` (load an engine) now, in the
        background, so that the first real job does not pay for it (a process's first use of
        Piper or whisper.cpp costs seconds of loading). Once per engine; skipped when busy."""
        key = (fn.__qualname__, args)
        if key in self._warmed:
            return
        self._warmed.add(key)
        for _ in range(self.workers):
            try:
                reservation = self.reserve()
            except Busy:
                return  # the workers are busy, so they are started
            task = asyncio.ensure_future(self.run(reservation, fn, *args))
            self._warming.add(task)
            task.add_done_callback(self._warmed_one)

    def _warmed_one(self, task: asyncio.Future[Any]) -> None:
        self._warming.discard(task)
        if task.cancelled():
            return
        if task.exception() is not None:
            log.warning("warming a voice worker failed: %s", task.exception())
        else:
            self.warm_jobs_done += 1

    def reset(self) -> None:
        self._warmed.clear()
        self.warm_jobs_done = 0
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        for task in list(self._warming):
            task.cancel()
        executor, self._executor = self._executor, None
        if executor is None:
            return
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:  # a job may run for minutes: do not wait for it
            with contextlib.suppress(Exception):
                process.terminate()


class Reservation:
    def __init__(self, lane: Lane) -> None:
        self.lane = lane
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.lane.held -= 1


class VoicePool:
    def __init__(self, workers: int, waiting: int, nice: int = 0) -> None:
        self.engines = Lane("engines", workers, waiting, nice)
        self.checks = Lane("checks", 1, max(4, waiting), nice)

    def close(self) -> None:
        self.engines.close()
        self.checks.close()
