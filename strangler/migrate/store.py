"""Where the autopilot keeps its plans' states, and who may evaluate them.

``migrate.json`` in the state directory holds one ``MigrationState`` per route (JSON,
replaced atomically); every process may read it, so every worker's admin API answers
the same. Read-modify-write (an evaluation, an operator's action) happens under an
exclusive ``flock`` on ``migrate.lock``, so two writers never lose each other's change.

The lease (``migrate.lease``: owner and expiry) names the one process that evaluates
plans: ``acquire`` renews it for its owner, takes it when it expired, and refuses it
otherwise. With ``--workers N`` exactly one worker evaluates; when it dies, another
takes over once the lease expires (a few evaluation intervals). Workers on one host
share the directory; replicas on several hosts need a shared directory whose locks
work across hosts.

Failures: a state directory that cannot be written makes ``save`` raise ``OSError``
(the runner logs it and keeps the route where it is); an unreadable or corrupt file
reads as "no states" for the routes it cannot parse, never as a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Final, Protocol

from strangler.migrate.machine import MigrationState

__all__ = ["MigrateStore", "Store", "parse_states"]

_STATES: Final = "migrate.json"
_LOCK: Final = "migrate.lock"
_LEASE: Final = "migrate.lease"
_GATES: Final = "migrate-gates.json"


class Store(Protocol):
    """What the autopilot needs of its state backend: ``MigrateStore`` (a state
    directory, one host) or ``redis_store.RedisMigrateStore`` (replicas on several).
    Every method but ``alocked`` blocks."""

    owner: str
    per_process: bool  # True: each process publishes its own reading (replicas on hosts)

    def locked(self) -> contextlib.AbstractContextManager[None]: ...
    def alocked(self) -> contextlib.AbstractAsyncContextManager[None]: ...
    def load(self) -> dict[str, MigrationState]: ...
    def save(self, states: Mapping[str, MigrationState]) -> None: ...
    def save_gates(self, gates: Mapping[str, object]) -> None: ...
    def load_gates(self) -> dict[str, object]: ...
    def acquire(self, now: float, ttl: float) -> bool: ...
    def leader(self, now: float) -> str | None: ...
    def release(self) -> bool: ...
    def publish_reading(self, reading: str, ttl: float) -> None: ...
    def readings(self) -> dict[str, str]: ...


def parse_states(raw: object) -> dict[str, MigrationState]:
    """The routes' states from their JSON data; an entry that does not parse is left
    out (read as "not started"), never a crash."""
    out: dict[str, MigrationState] = {}
    if isinstance(raw, dict):
        for route, data in raw.items():
            if isinstance(data, dict):
                with contextlib.suppress(ValueError, TypeError, IndexError):
                    out[str(route)] = MigrationState.from_dict(data)
    return out


def _close_taken(taking: asyncio.Future[int]) -> None:
    if not taking.cancelled() and taking.exception() is None:
        os.close(taking.result())


class MigrateStore:
    per_process = False  # one host: the multiprocess registry already sums every worker

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # host:pid, and a tag: two servers in one process are two owners too
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock for a read-modify-write (blocking, held briefly)."""
        fd = self._lock()
        try:
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @contextlib.asynccontextmanager
    async def alocked(self) -> AsyncIterator[None]:
        """``locked`` for a coroutine: the lock is taken and given back in a thread, and
        held across the awaits in between (an evaluation applies shares under it)."""
        # The lock is taken in a thread that a cancellation cannot stop: when the wait is
        # cancelled, the fd the thread still gets must be closed (or this process would
        # hold the lock forever, and its own next lock would wait for itself).
        taking = asyncio.get_running_loop().run_in_executor(None, self._lock)
        try:
            fd = await asyncio.shield(taking)
        except asyncio.CancelledError:
            taking.add_done_callback(_close_taken)
            raise
        try:
            yield
        finally:
            await asyncio.to_thread(os.close, fd)

    def _lock(self, blocking: bool = True) -> int:
        """The lock's fd, locked; ``blocking=False`` raises ``BlockingIOError`` when
        someone holds it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def load(self) -> dict[str, MigrationState]:
        try:
            raw = json.loads((self.directory / _STATES).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return parse_states(raw)

    def save(self, states: Mapping[str, MigrationState]) -> None:
        """Replace the file atomically (call under ``locked``)."""
        text = json.dumps({r: s.as_dict() for r, s in sorted(states.items())}, indent=1)
        self._replace(_STATES, text)

    def save_gates(self, gates: Mapping[str, object]) -> None:
        """The last evaluation's gates and figures per route (the leader writes them, so
        every process shows the same)."""
        self._replace(_GATES, json.dumps(gates))

    def load_gates(self) -> dict[str, object]:
        try:
            raw = json.loads((self.directory / _GATES).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return raw if isinstance(raw, dict) else {}

    def _replace(self, name: str, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".migrate-", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, self.directory / name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def acquire(self, now: float, ttl: float) -> bool:
        """Hold the evaluation lease until ``now + ttl``: renewed for its owner, taken
        when expired (or absent), refused while another owner holds it."""
        with self.locked():
            path = self.directory / _LEASE
            try:
                lease = json.loads(path.read_text(encoding="utf-8"))
                owner, until = str(lease["owner"]), float(lease["until"])
            except (OSError, ValueError, KeyError, TypeError):
                owner, until = "", 0.0
            if owner not in ("", self.owner) and until > now:
                return False
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"owner": self.owner, "until": now + ttl}), "utf-8")
            os.replace(tmp, path)
            return True

    def leader(self, now: float) -> str | None:
        """Who holds the lease now (``None``: nobody)."""
        try:
            lease = json.loads((self.directory / _LEASE).read_text(encoding="utf-8"))
            return str(lease["owner"]) if float(lease["until"]) > now else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def release(self) -> bool:
        """Give the lease up (on shutdown), so another process takes over at once. Never
        waits for the lock: ``False`` when someone holds it (try again, or leave the
        lease to expire), else ``True`` (given up, or nothing to give up)."""
        try:
            fd = self._lock(blocking=False)
        except BlockingIOError:
            return False
        except OSError:  # the directory is gone
            return True
        try:
            path = self.directory / _LEASE
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                if json.loads(path.read_text(encoding="utf-8"))["owner"] == self.owner:
                    path.unlink()
        finally:
            os.close(fd)
        return True

    def publish_reading(self, reading: str, ttl: float) -> None:
        """Nothing to do: the evaluator reads every worker's counters on this host."""

    def readings(self) -> dict[str, str]:
        return {}
