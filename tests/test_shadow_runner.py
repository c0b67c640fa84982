"""``ShadowRunner``: bounded, tracked, drop-and-count, drained. Jobs wait on events."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref

import pytest

from strangler.shadow.runner import ShadowRunner


class Job:
    """A job that blocks until ``gate`` is set; records that it ran."""

    def __init__(self, n: int, gate: asyncio.Event) -> None:
        self.n = n
        self.gate = gate
        self.started = False
        self.finished = False


class Recorder:
    def __init__(self, full_at: int = 0) -> None:
        self.dropped: list[int] = []
        self.done: list[int] = []
        self.running = 0
        self.peak = 0
        self.full_at = full_at
        self.full = asyncio.Event()  # set once `full_at` jobs run at the same time

    async def run(self, job: Job) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        if self.running == self.full_at:
            self.full.set()
        job.started = True
        try:
            await job.gate.wait()
            job.finished = True
            self.done.append(job.n)
        finally:
            self.running -= 1

    def drop(self, job: Job) -> None:
        self.dropped.append(job.n)


async def next_turn() -> None:
    """Let every ready task run once (one event-loop iteration; no timed wait)."""
    fut = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(fut.set_result, None)
    await fut


def make(rec: Recorder, concurrency: int = 4, queue: int = 16) -> ShadowRunner[Job]:
    return ShadowRunner(rec.run, concurrency=concurrency, queue=queue, on_drop=rec.drop)


async def test_flood_is_bounded_and_drops_are_counted() -> None:
    rec = Recorder(full_at=4)
    runner = make(rec, concurrency=4, queue=16)
    gate = asyncio.Event()
    refs: list[weakref.ref[Job]] = []

    def submit(i: int) -> bool:
        job = Job(i, gate)
        refs.append(weakref.ref(job))
        return runner.submit(job)

    accepted = sum(submit(i) for i in range(10_000))
    assert accepted == 20
    assert (runner.running, runner.waiting) == (4, 16)
    assert runner.dropped == len(rec.dropped) == 9_980
    assert rec.dropped == list(range(20, 10_000))  # the first 20 were taken, in order
    gc.collect()
    alive = sum(r() is not None for r in refs)
    assert alive == 20  # memory: only the jobs the runner holds are alive

    await rec.full.wait()  # the 4 started jobs are in flight, blocked on the gate
    assert rec.peak == 4
    gate.set()
    await runner.join()
    assert sorted(rec.done) == list(range(20))
    assert rec.peak == 4  # never more than `concurrency` at once
    assert (runner.running, runner.waiting, runner.finished) == (0, 0, 20)


async def test_submit_never_awaits() -> None:
    rec = Recorder()
    runner = make(rec, concurrency=1, queue=0)
    gate = asyncio.Event()
    # submit is a plain function: it returns before any job code ran
    assert runner.submit(Job(1, gate)) is True
    assert rec.running == 0
    assert runner.submit(Job(2, gate)) is False
    gate.set()
    await runner.join()
    assert rec.done == [1]


async def test_tasks_are_named_and_strongly_held() -> None:
    rec = Recorder()
    runner = ShadowRunner(rec.run, concurrency=2, queue=0, name="shadow-invoices")
    gate = asyncio.Event()
    runner.submit(Job(1, gate))
    runner.submit(Job(2, gate))
    names = sorted(t.get_name() for t in runner._active)
    assert names == ["shadow-invoices-1", "shadow-invoices-2"]
    gc.collect()
    assert runner.running == 2
    gate.set()
    await runner.join()


async def test_a_failing_job_is_logged_and_the_runner_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done = asyncio.Event()

    async def work(n: int) -> None:
        if n == 1:
            raise RuntimeError("boom")
        done.set()

    runner: ShadowRunner[int] = ShadowRunner(work, concurrency=1, queue=1)
    with caplog.at_level(logging.ERROR, logger="strangler.shadow"):
        assert runner.submit(1)
        assert runner.submit(2)
        await runner.join()
    assert done.is_set()
    assert runner.failed == 1
    assert "a background job failed" in caplog.text
    assert "boom" in caplog.text


async def test_drain_waits_for_jobs_that_finish() -> None:
    rec = Recorder()
    runner = make(rec, concurrency=2, queue=2)
    gate = asyncio.Event()
    for i in range(4):
        runner.submit(Job(i, gate))

    drained = asyncio.ensure_future(runner.drain(60.0))
    await next_turn()
    assert runner.closed
    assert runner.submit(Job(99, gate)) is False  # draining: refused and counted
    assert rec.dropped == [99]
    gate.set()
    assert await drained == 0
    assert sorted(rec.done) == [0, 1, 2, 3]


async def test_drain_cancels_what_outlives_the_deadline() -> None:
    rec = Recorder()
    runner = make(rec, concurrency=2, queue=3)
    never = asyncio.Event()
    jobs = [Job(i, never) for i in range(5)]
    for job in jobs:
        runner.submit(job)
    cut = await runner.drain(0.0)
    assert cut == 5  # 2 running cancelled, 3 queued dropped
    assert rec.dropped == [2, 3, 4]
    assert (runner.running, runner.waiting) == (0, 0)
    assert not any(j.finished for j in jobs)
    assert runner.submit(Job(9, never)) is False


async def test_resize() -> None:
    rec = Recorder()
    runner = make(rec, concurrency=1, queue=4)
    gate = asyncio.Event()
    for i in range(5):
        assert runner.submit(Job(i, gate))
    assert (runner.running, runner.waiting) == (1, 4)
    runner.resize(concurrency=3, queue=1)  # two queued start, the newest queued is dropped
    assert (runner.running, runner.waiting) == (3, 1)
    assert rec.dropped == [4]
    gate.set()
    await runner.join()
    assert sorted(rec.done) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="concurrency"):
        runner.resize(0, 1)


def test_limits_are_checked() -> None:
    rec = Recorder()
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        ShadowRunner(rec.run, concurrency=0, queue=1)
