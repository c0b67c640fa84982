"""``strangler serve`` as a subprocess, the way an operator runs it, for the integration
tests: started in its own process group, ready once every worker said so, stopped
with a signal, and never left behind.

``serve(*args, workers=N)`` is the one way to run it::

    async with serve("--config", str(cfg), workers=3, cwd=tmp_path) as s:
        await get(s.url + "/x")           # every worker listens on both ports by now
        s.send_signal(signal.SIGHUP)
        await s.logged("config reload rejected")
        assert await s.stop() == 0        # SIGTERM; the supervisor stops its workers

What it guarantees:

- **Ready means listening.** Each worker logs ``serving on HOST:PORT (admin HOST:PORT)``
  once both its listeners are open; ``serve`` returns when ``workers`` distinct pids
  have logged it. stderr is read line by line as it comes, and waiting on it is an
  event (a ``Condition`` notified per line), not a poll; the process exiting first
  fails the wait at once with everything it wrote.
- **No orphans.** The process is a session leader (``start_new_session``), so its
  workers share its process group; leaving the block, however it is left, kills
  whatever is still in that group (SIGKILL). A failed assertion never leaves a
  supervisor or a worker holding a port for the next test.
- The ports come from the log, so a test needs them only to write its config.

``worker_pids`` asks the admin port which workers answer it (fresh connections, so
a bounded poll); ``until`` polls any other state of the process that it does not log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

import aiohttp

T = TypeVar("T")

HOST: Final = "127.0.0.1"
READY_WITHIN: Final = 30.0  # seconds for every worker to log that it serves (a loaded host)
STOP_WITHIN: Final = 15.0  # seconds a SIGTERM gets to drain and exit
POLL: Final = 0.05  # seconds between tries of a bounded poll
MAX_LINE: Final = 1 << 20  # a config problem report can be one long line
SERVING = re.compile(r"\[(\d+)\]: strangler \S+ serving on \S+:(\d+) \(admin \S+:(\d+)\)")


def free_port() -> int:
    """A free port below the ephemeral range: a process gets the port some time after
    it was picked, and an ephemeral port may meanwhile become the local end of one of
    the many outgoing connections the suite makes (then the bind fails)."""
    low, _ = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(10000, max(low, 10001))
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below the ephemeral range")


def listen_args(port: int | None = None, admin: int | None = None) -> tuple[str, ...]:
    """``--listen`` and ``--admin-listen`` on 127.0.0.1, on free ports unless given."""
    return (
        "--listen",
        f"{HOST}:{port or free_port()}",
        "--admin-listen",
        f"{HOST}:{admin or free_port()}",
    )


async def _start(args: tuple[str, ...], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "strangler",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        start_new_session=True,  # its own process group: the workers are in it
        limit=MAX_LINE,
    )


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL whatever is left of ``proc``'s process group (its workers even when
    the supervisor already exited), and reap ``proc``."""
    with contextlib.suppress(ProcessLookupError):  # the group is empty: all exited
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


@dataclass(slots=True, eq=False)
class Serving:
    """A running ``strangler serve``: the process, what it logged so far, and the
    ports and worker pids it logged."""

    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    _grew: asyncio.Condition = field(default_factory=asyncio.Condition)
    _ended: bool = False

    @property
    def port(self) -> int:
        return self._first_serving()[1]

    @property
    def admin(self) -> int:
        return self._first_serving()[2]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{HOST}:{self.admin}"

    @property
    def workers(self) -> set[int]:
        """Every pid that logged that it serves (replacement workers too)."""
        return {pid for pid, _, _ in self._serving()}

    def log_text(self) -> str:
        return "".join(self.lines)

    def send_signal(self, sig: int) -> None:
        """Signal the supervisor (it forwards SIGHUP and SIGTERM to its workers)."""
        self.proc.send_signal(sig)

    async def exited(self, within: float = STOP_WITHIN) -> int:
        """The exit code, once the process and its stderr have ended."""
        await self._wait(lambda _lines: True if self._ended else None, "the exit", within)
        return await asyncio.wait_for(self.proc.wait(), within)

    async def stop(self, sig: int = signal.SIGTERM, within: float = STOP_WITHIN) -> int:
        """Send ``sig`` (a drain) and return the exit code."""
        self.send_signal(sig)
        return await self.exited(within)

    async def logged(self, text: str, count: int = 1, within: float = STOP_WITHIN) -> str:
        """The ``count``-th line containing ``text``, once it was written."""

        def found(lines: list[str]) -> str | None:
            hits = [line for line in lines if text in line]
            return hits[count - 1] if len(hits) >= count else None

        return await self._wait(found, repr(text), within)

    async def serving(self, workers: int, within: float = READY_WITHIN) -> set[int]:
        """The pids of the first ``workers`` workers, once each logged that it serves."""

        def ready(_lines: list[str]) -> set[int] | None:
            pids = self.workers
            return pids if len(pids) >= workers else None

        return await self._wait(ready, f"{workers} worker(s) serving", within)

    def _serving(self) -> list[tuple[int, int, int]]:
        return [
            (int(m[1]), int(m[2]), int(m[3])) for line in self.lines if (m := SERVING.search(line))
        ]

    def _first_serving(self) -> tuple[int, int, int]:
        found = self._serving()
        assert found, f"strangler has not logged that it serves yet:\n{self.log_text()}"
        return found[0]

    async def _wait(self, probe: Callable[[list[str]], T | None], what: str, within: float) -> T:
        """Wait (on each new line of stderr) until ``probe(lines)`` gives something."""
        try:
            async with asyncio.timeout(within), self._grew:
                while (found := probe(self.lines)) is None:
                    if self._ended:
                        raise AssertionError(
                            f"strangler exited ({self.proc.returncode}) before {what}:\n"
                            + self.log_text()
                        )
                    await self._grew.wait()
                return found
        except TimeoutError:
            raise AssertionError(f"no {what} within {within:g}s:\n{self.log_text()}") from None

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            async with self._grew:
                self.lines.append(raw.decode(errors="replace"))
                self._grew.notify_all()
        await self.proc.wait()
        async with self._grew:
            self._ended = True
            self._grew.notify_all()


@asynccontextmanager
async def serve(
    *args: str, workers: int | None = None, cwd: Path | None = None, ready: bool = True
) -> AsyncIterator[Serving]:
    """``strangler serve ARGS [--workers N]`` in ``cwd`` (default: a fresh temporary
    directory), yielded once ``workers`` (default 1) workers serve; with
    ``ready=False`` at once (a start expected to fail). The process group is killed
    on the way out."""
    argv = ("serve", *args, *(("--workers", str(workers)) if workers is not None else ()))
    with contextlib.ExitStack() as temporary:
        # the working directory (zero-config mode keeps its state files there)
        where = cwd or Path(temporary.enter_context(tempfile.TemporaryDirectory()))
        proc = await _start(argv, where)
        running = Serving(proc)
        reader = asyncio.get_running_loop().create_task(running._read(), name="serve-stderr")
        try:
            if ready:
                await running.serving(workers or 1)
            yield running
        finally:
            await _kill_group(proc)
            await asyncio.wait_for(reader, STOP_WITHIN)  # stderr ends with the group


async def until(probe: Callable[[], Awaitable[T | None]], what: str, tries: int = 200) -> T:
    """Poll ``probe`` (bounded: ``tries`` x 50 ms) until it returns something: for a
    state of another process that it does not log (there is no event to await)."""
    for _ in range(tries):
        found = await probe()
        if found is not None:
            return found
        await asyncio.sleep(POLL)
    raise AssertionError(f"timed out waiting for {what}")


async def worker_pids(admin_port: int, workers: int) -> set[int]:
    """The pids of the workers answering on ``admin_port``, from fresh connections
    (the kernel spreads them over the workers sharing the port); bounded."""
    pids: set[int] = set()
    for _ in range(200):
        async with aiohttp.ClientSession() as s:
            try:
                async with s.get(f"http://{HOST}:{admin_port}/readyz") as r:
                    pids.add(int((await r.json())["worker_pid"]))
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(POLL)  # a worker may still be starting
        if len(pids) == workers:
            return pids
    raise AssertionError(f"saw {len(pids)} of {workers} workers: {pids}")
