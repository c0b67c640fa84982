"""Release changes the state store refused (disk full, read-only): kept, shared, retried.

A kill switch must work when the disk does not. When ``FileStateStore`` refuses a
write (``StateNotPersisted``), ``ReleaseControls`` applies the change in memory at once
and records the route's wanted state here. What is pending overrides what the store
holds, in every worker, until it is stored:

- ``PendingChanges(None)`` (one worker): kept in this process's memory.
- ``PendingChanges(path)`` (``--workers N``): one small JSON file in the runtime
  directory the supervisor creates (beside the multiprocess metric files), replaced
  atomically under an exclusive ``flock``; each worker's ``sync`` sees it change with
  one ``stat``, exactly as it sees the state file change.

``flush(store)`` writes every pending route's state to the store in one atomic
``update_routes`` (each an idempotent "set to this state": a pending canary group
is stored whole) and then clears the list; any worker may do it, under the same
lock, so a change recorded meanwhile is never dropped. While the store still refuses,
``flush`` raises ``StateNotPersisted`` and everything stays pending.

The file is ``{"routes": {NAME: RouteState.to_dict(), ...}}``; a route in its default
state is listed too (an ``enable`` that must override a stored kill).

>>> from strangler.release.state import MemoryStateStore
>>> pending = PendingChanges(None)
>>> pending.add("invoices", RouteState(killed=True, since=1.0))
>>> sorted(pending.load()), pending.active
(['invoices'], True)
>>> store = MemoryStateStore()
>>> sorted(pending.flush(store))
['invoices']
>>> store.load()["invoices"].killed, pending.active
(True, False)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import final

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from strangler.release.state import RouteState, StateFileError, StateStore

if sys.platform != "win32":
    import fcntl

__all__ = ["PENDING_FILE", "FileStoreCollector", "PendingChanges"]

PENDING_FILE = "release-pending.json"
"""The shared file's name inside the runtime directory."""

_Fingerprint = tuple[int, int, int, int]


@final
class PendingChanges:
    """Route states applied in memory but not yet stored; see the module doc.

    Blocking and thread-safe, like the stores: call it through ``asyncio.to_thread``.
    """

    __slots__ = ("_lock", "_memory", "_memory_version", "_seen", "path")

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = None if path is None else Path(path)
        self._lock = threading.Lock()
        self._memory: dict[str, RouteState] = {}
        self._memory_version = 0
        self._seen: _Fingerprint | int | None = None

    @classmethod
    def in_dir(cls, directory: str | os.PathLike[str] | None) -> PendingChanges:
        return cls(None if directory is None else Path(directory) / PENDING_FILE)

    @property
    def active(self) -> bool:
        """Something is waiting to be stored (in this process or, shared, any worker)."""
        return bool(self.load())

    def add(self, route: str, state: RouteState) -> None:
        """Record ``route``'s wanted state (replacing what was pending for it)."""
        self.add_routes({route: state})

    def add_routes(self, states: Mapping[str, RouteState]) -> None:
        """Record each route's wanted state in one replace of the list: a canary
        group's write is pending for all its routes or (raising) for none."""
        with self._lock, self._exclusive():
            routes = self._read()
            routes.update((name, state.copy()) for name, state in states.items())
            self._store(routes)

    def load(self) -> dict[str, RouteState]:
        """Everything pending, by route; ``{}`` when nothing is."""
        with self._lock:
            routes = self._read()
            self._seen = self._fingerprint()
            return routes

    def changed(self) -> bool:
        """Cheaply: did the pending set change since this process last loaded it?"""
        return self._fingerprint() != self._seen

    def flush(self, store: StateStore) -> Mapping[str, RouteState] | None:
        """Store every pending route's state, then forget them; return what the store
        holds after (``None``: nothing was pending). Raises what the store raises
        (``StateNotPersisted`` while the disk still refuses): nothing is lost."""
        with self._lock, self._exclusive():
            routes = self._read()
            if not routes:
                return None
            # One store write for every pending route: a pending canary group lands
            # all at once, never half rolled back.
            names = list(routes)
            results = store.update_routes(names, _set_each([routes[n] for n in names]))
            self._store({})
            return results[0].routes

    # -- internals

    def _fingerprint(self) -> _Fingerprint | int | None:
        if self.path is None:
            return self._memory_version
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size

    def _read(self) -> dict[str, RouteState]:
        if self.path is None:
            return {n: s.copy() for n, s in self._memory.items()}
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as err:
            raise StateFileError(f"cannot read {self.path}: {err.strerror or err}") from err
        try:
            body = json.loads(data) if data.strip() else {}
        except ValueError:
            raise StateFileError(f"{self.path} is not valid JSON") from None
        routes = body.get("routes", {}) if isinstance(body, dict) else None
        if not isinstance(routes, dict):
            raise StateFileError(f'{self.path} must be an object like {{"routes": {{...}}}}')
        return {
            str(name): RouteState.from_dict(fields, what=f"{self.path}: route {name!r}")
            for name, fields in routes.items()
        }

    def _store(self, routes: Mapping[str, RouteState]) -> None:
        if self.path is None:
            self._memory = {n: s.copy() for n, s in routes.items()}
            self._memory_version += 1
            return
        if not routes:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            return
        body = {"routes": {n: s.to_dict() for n, s in sorted(routes.items())}}
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(body, f)
            os.replace(tmp, self.path)  # readers see the old or the new list, never half
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        if self.path is None or sys.platform == "win32":
            yield
            return
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _set_each(wanted: Sequence[RouteState]) -> Callable[[RouteState], None]:
    """A change for ``StateStore.update_routes(names, ...)`` setting the n-th name to
    ``wanted[n]``. The stores apply a change once per name, in order, and start over
    from the first name when they retry (Redis), hence the cycle."""
    turn = itertools.cycle(wanted)

    def change(state: RouteState) -> None:
        state.assign(next(turn))

    return change


@final
class FileStoreCollector:
    """``strangler_state_store_up{backend="file"}``: 0 while a release change lives
    only in memory because the state file's disk refused it (full, read-only), 1 once
    everything is stored. The Redis store has its own (``StateStoreCollector``)."""

    def __init__(self, up: Callable[[], bool]) -> None:
        self._up = up

    def describe(self) -> list[Metric]:
        return [self._family()]

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "strangler_state_store_up",
            "1 while the release state store stored every change, else 0.",
            labels=("backend",),
        )

    def collect(self) -> Iterator[Metric]:
        up = self._family()
        up.add_metric(["file"], 1.0 if self._up() else 0.0)
        yield up
