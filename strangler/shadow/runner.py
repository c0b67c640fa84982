"""A bounded, tracked set of background jobs: the only place strangler starts them.

``ShadowRunner(run, concurrency=..., queue=...)`` runs ``await run(job)`` for each job
given to ``submit``, at most ``concurrency`` at a time, with at most ``queue`` more
waiting for a slot. Guarantees:

- ``submit`` never awaits and never blocks: it starts a task, queues the job, or drops
  it (full, or draining) and returns ``False``; a drop calls ``on_drop(job)`` so it is
  counted. Memory is bounded by ``concurrency + queue`` jobs whatever the load;
- every task is referenced by the runner until it ends (no task is garbage-collected
  mid-flight), named ``{name}-{n}``, and its unexpected exception is logged, never
  lost and never propagated;
- ``join()`` waits until nothing runs or waits (tests, and a drain);
- ``drain(deadline)`` refuses new jobs, lets running and queued ones finish for up to
  ``deadline`` seconds, then cancels the rest and waits for them; it returns how many
  were cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["ShadowRunner"]

log = logging.getLogger("strangler.shadow")

J = TypeVar("J")


class ShadowRunner(Generic[J]):
    """Runs jobs in the background, bounded; see the module docstring."""

    __slots__ = (
        "_active", "_closed", "_idle", "_run", "_seq", "_waiting", "concurrency", "dropped",
        "failed", "finished", "name", "on_drop", "queue",
    )  # fmt: skip

    def __init__(
        self,
        run: Callable[[J], Awaitable[None]],
        *,
        concurrency: int,
        queue: int,
        name: str = "shadow",
        on_drop: Callable[[J], None] | None = None,
    ) -> None:
        if concurrency < 1 or queue < 0:
            raise ValueError(f"concurrency must be >= 1 and queue >= 0, got {concurrency}/{queue}")
        self._run = run
        self.concurrency = concurrency
        self.queue = queue
        self.name = name
        self.on_drop = on_drop
        self._active: set[asyncio.Task[None]] = set()
        self._waiting: deque[J] = deque()
        self._closed = False
        self._idle: asyncio.Event | None = None
        self._seq = 0
        self.dropped = 0
        self.finished = 0
        self.failed = 0

    @property
    def running(self) -> int:
        return len(self._active)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, job: J) -> bool:
        """Run ``job`` now, or queue it; ``False`` (and ``on_drop(job)``) when full or
        draining. Never awaits; call it from the event loop's thread."""
        if self._closed:
            self._drop(job)
            return False
        if len(self._active) < self.concurrency:
            self._start(job)
            return True
        if len(self._waiting) < self.queue:
            self._waiting.append(job)
            return True
        self._drop(job)
        return False

    def resize(self, concurrency: int, queue: int) -> None:
        """New limits (after a reload). Extra slots start queued jobs at once; a shorter
        queue drops its newest jobs; running jobs are never cut."""
        if concurrency < 1 or queue < 0:
            raise ValueError(f"concurrency must be >= 1 and queue >= 0, got {concurrency}/{queue}")
        self.concurrency, self.queue = concurrency, queue
        self._fill()
        while len(self._waiting) > queue:
            self._drop(self._waiting.pop())

    def _drop(self, job: J) -> None:
        self.dropped += 1
        if self.on_drop is not None:
            self.on_drop(job)

    def _start(self, job: J) -> None:
        self._seq += 1
        # The one sanctioned create_task: strong reference in _active until done.
        task = asyncio.get_running_loop().create_task(
            self._guarded(job), name=f"{self.name}-{self._seq}"
        )
        self._active.add(task)
        task.add_done_callback(self._done)

    async def _guarded(self, job: J) -> None:
        try:
            await self._run(job)
        except Exception:
            self.failed += 1
            log.exception("%s: a background job failed", self.name)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._active.discard(task)
        self.finished += 1
        self._fill()
        if self._idle is not None and not self._active and not self._waiting:
            self._idle.set()

    def _fill(self) -> None:
        while self._waiting and len(self._active) < self.concurrency:
            self._start(self._waiting.popleft())

    async def join(self) -> None:
        """Wait until no job runs or waits (jobs may still be submitted meanwhile)."""
        while self._active or self._waiting:
            if self._idle is None or self._idle.is_set():
                self._idle = asyncio.Event()
            await self._idle.wait()

    async def drain(self, deadline: float) -> int:
        """Refuse new jobs; wait up to ``deadline`` seconds for running and queued
        ones; then drop what still waits, cancel what still runs, and wait for the
        cancelled tasks to end. Returns the number of jobs cut."""
        self._closed = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(deadline, 0.0)):
                await self.join()
        cut = len(self._waiting)
        while self._waiting:
            self._drop(self._waiting.popleft())
        tasks = list(self._active)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        return cut + len(tasks)
