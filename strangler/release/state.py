"""Runtime release state: kill switches, percent overrides, guard trips; kept on disk.

Three parts, one job each:

- ``RouteState`` / ``RuntimeState``: the in-memory state ``decide`` reads, per route
  name. It is apart from the config snapshot and survives reloads:
  ``RuntimeState.reconcile(names)`` keeps the state of routes that stay, adds new
  ones, drops removed ones. The objects are updated **in place** (``apply``), so a
  reference taken by a request stays valid.
- ``StateStore`` / ``FileStateStore``: the state on disk, so it survives restarts and
  reaches every worker. One JSON file, replaced atomically (temp file, fsync,
  ``os.replace``); every change is a locked read-modify-write of one route
  (``update``), so two workers changing two routes at once lose neither change.
  ``update_routes`` changes several routes in one such write (a canary group moves
  as one: every reader sees all of them changed or none).
  Each worker polls ``changed()`` (one ``stat``) every ``state.file_poll`` and, when
  the file moved, ``load()``s it and ``apply``s it: a change made through one worker
  reaches the others within one poll.
- ``AuditLog``: who changed what, one JSON line per change, appended.

All file I/O is blocking and thread-safe: call it through ``asyncio.to_thread``,
never on the event loop. Nothing here reads a clock by itself except ``AuditLog``
(injectable); ``since`` times are passed in.

The file (``<state.dir>/state.json``) lists only routes whose state is not the
default, including routes the current config no longer has (another worker may run
a newer config, and a route that comes back keeps its kill switch)::

    {"version": 1, "routes": {"invoices-read": {"killed": true, "percent_override": null,
     "guard_tripped": false, "guard_reason": null, "since": 1767225600.0}}}

>>> state = RuntimeState()
>>> state.for_route("invoices").kill(True, at=100.0)
>>> state.to_dict()
{'invoices': {'killed': True, 'percent_override': None, 'guard_tripped': False, \
'guard_reason': None, 'since': 100.0}}
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol, final

from strangler.errors import StranglerError

if sys.platform != "win32":  # a lock between processes; on Windows only between threads
    import fcntl

__all__ = [
    "AUDIT_FILE",
    "STATE_FILE",
    "AuditLog",
    "FileStateStore",
    "MemoryStateStore",
    "RouteState",
    "RuntimeState",
    "StateChange",
    "StateFileError",
    "StateNotPersisted",
    "StateStore",
]

STATE_FILE: Final = "state.json"
"""The state file's name inside ``state.dir``."""
AUDIT_FILE: Final = "audit.jsonl"
"""The audit log's name inside ``state.dir``."""

_FORMAT: Final = 1
_FIELDS: Final = ("killed", "percent_override", "guard_tripped", "guard_reason", "since")
_SECRET_WORDS: Final = ("token", "secret", "password", "authorization", "cookie", "api_key")
_REDACTED: Final = "[redacted]"


class StateFileError(StranglerError):
    """The state file exists but cannot be read as state (bad JSON, wrong shape).

    At start-up, refuse to serve (a kill switch could silently be lost); while
    running, keep the state in memory and log it.
    """


class StateNotPersisted(StateFileError):
    """A write the file system refused (full, read-only, the directory gone or replaced
    by a file): nothing was stored. ``ReleaseControls`` then applies the change in
    memory (a kill switch must work when the disk does not) and stores it later."""


# ---------------------------------------------------------------------------- in memory


@final
class RouteState:
    """The release state of one route. Mutable; owned by ``RuntimeState``.

    ``killed``: the kill switch; every request goes to the route's primary.
    ``percent_override``: replaces the canary's share while set (a ratio in [0, 1],
    like ``Canary.ratio``: 25% is 0.25); ignored on a route without a canary.
    ``guard_tripped`` / ``guard_reason``: the SLO guard stepped back, and why; it
    stays tripped until reset by an operator. ``since``: wall-clock time (epoch
    seconds) of the last change; 0.0 for never.
    """

    __slots__ = ("guard_reason", "guard_tripped", "killed", "percent_override", "since")

    def __init__(
        self,
        *,
        killed: bool = False,
        percent_override: float | None = None,
        guard_tripped: bool = False,
        guard_reason: str | None = None,
        since: float = 0.0,
    ) -> None:
        self.killed = killed
        self.percent_override = percent_override
        self.guard_tripped = guard_tripped
        self.guard_reason = guard_reason
        self.since = since

    # -- changes (each stamps ``since``)

    def kill(self, on: bool, *, at: float) -> None:
        self.killed = on
        self.since = at

    def set_percent(self, ratio: float | None, *, at: float) -> None:
        """Override the canary share (``None``: back to the config's)."""
        if ratio is not None and not (math.isfinite(ratio) and 0.0 <= ratio <= 1.0):
            raise ValueError(f"a percent override is a ratio from 0 to 1, got {ratio!r}")
        self.percent_override = ratio
        self.since = at

    def trip(self, reason: str, *, at: float) -> None:
        self.guard_tripped = True
        self.guard_reason = reason
        self.since = at

    def reset_guard(self, *, at: float) -> None:
        self.guard_tripped = False
        self.guard_reason = None
        self.since = at

    # -- conversions

    @property
    def is_default(self) -> bool:
        """Nothing set: the route behaves as its config says."""
        return not (self.killed or self.guard_tripped or self.percent_override is not None)

    def to_dict(self) -> dict[str, object]:
        return {
            "killed": self.killed,
            "percent_override": self.percent_override,
            "guard_tripped": self.guard_tripped,
            "guard_reason": self.guard_reason,
            "since": self.since,
        }

    @classmethod
    def from_dict(cls, data: object, *, what: str = "route state") -> RouteState:
        """The inverse of ``to_dict``; missing fields take defaults, unknown ones are
        ignored (a newer writer). Raises ``StateFileError`` on a wrong type."""
        if not isinstance(data, Mapping):
            raise StateFileError(f"{what} must be an object, got {type(data).__name__}")
        state = cls()
        killed = data.get("killed", False)
        tripped = data.get("guard_tripped", False)
        ratio = data.get("percent_override")
        reason = data.get("guard_reason")
        since = data.get("since", 0.0)
        if not isinstance(killed, bool) or not isinstance(tripped, bool):
            raise StateFileError(f"{what}: killed and guard_tripped must be true or false")
        if ratio is not None and (
            isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0.0 <= ratio <= 1.0
        ):
            raise StateFileError(f"{what}: percent_override must be null or from 0 to 1")
        if reason is not None and not isinstance(reason, str):
            raise StateFileError(f"{what}: guard_reason must be null or a string")
        if isinstance(since, bool) or not isinstance(since, int | float):
            raise StateFileError(f"{what}: since must be a number")
        state.killed, state.guard_tripped = killed, tripped
        state.percent_override = None if ratio is None else float(ratio)
        state.guard_reason, state.since = reason, float(since)
        return state

    def assign(self, other: RouteState) -> None:
        """Take ``other``'s values, keeping this object (references stay valid)."""
        for name in _FIELDS:
            setattr(self, name, getattr(other, name))

    def copy(self) -> RouteState:
        twin = RouteState()
        twin.assign(self)
        return twin

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RouteState):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in _FIELDS)
        return f"RouteState({inner})"


@final
class RuntimeState:
    """Every route's ``RouteState``, by route name; lives as long as the process.

    ``for_route`` never fails: a route not seen before gets its stored state (from
    the last ``apply``) or the default, and is kept. ``apply`` and ``reconcile``
    update the objects in place. Mutate only from the event loop thread.
    """

    __slots__ = ("_routes", "_stored")

    def __init__(self) -> None:
        self._routes: dict[str, RouteState] = {}
        self._stored: dict[str, RouteState] = {}  # the last state read from the store

    def for_route(self, name: str) -> RouteState:
        state = self._routes.get(name)
        if state is None:
            stored = self._stored.get(name)
            state = self._routes[name] = RouteState() if stored is None else stored.copy()
        return state

    def get(self, name: str) -> RouteState | None:
        """The state of a known route, or ``None``."""
        return self._routes.get(name)

    def names(self) -> tuple[str, ...]:
        return tuple(self._routes)

    def reconcile(self, route_names: Iterable[str]) -> None:
        """After a reload: keep routes that stay, add new ones, drop removed ones."""
        wanted = dict.fromkeys(route_names)
        for name in [n for n in self._routes if n not in wanted]:
            del self._routes[name]
        for name in wanted:
            self.for_route(name)

    def apply(self, stored: Mapping[str, RouteState]) -> list[str]:
        """Make the known routes match ``stored`` (what the store holds; a route absent
        from it is back to default). Returns the names whose state changed."""
        self._stored = {name: state.copy() for name, state in stored.items()}
        changed = []
        for name, state in self._routes.items():
            want = stored.get(name) or _DEFAULT
            if state != want:
                state.assign(want)
                changed.append(name)
        return changed

    def to_dict(self) -> dict[str, dict[str, object]]:
        """The routes whose state is not the default, as the store writes them."""
        return {n: s.to_dict() for n, s in self._routes.items() if not s.is_default}

    def __iter__(self) -> Iterator[tuple[str, RouteState]]:
        return iter(self._routes.items())


_DEFAULT: Final = RouteState()


# ---------------------------------------------------------------------------- on disk


@final
@dataclass(frozen=True, slots=True)
class StateChange:
    """What ``StateStore.update`` did: one route before and after, and everything now."""

    route: str
    before: RouteState
    after: RouteState
    routes: Mapping[str, RouteState]
    # False: applied in memory only, the store refused it (``not_persisted`` says why);
    # ``ReleaseControls`` keeps retrying until it is stored.
    persisted: bool = True
    not_persisted: str | None = None

    @property
    def changed(self) -> bool:
        return self.before != self.after


class StateStore(Protocol):
    """Where ``RuntimeState`` is kept between restarts and shared between workers."""

    def load(self) -> dict[str, RouteState]:
        """Every stored route state (non-default ones). ``{}`` when nothing is stored.
        Raises ``StateFileError`` when what is stored cannot be read."""
        ...

    def save(self, routes: Mapping[str, RouteState]) -> None:
        """Replace everything stored with ``routes`` (default states are left out)."""
        ...

    def update(self, route: str, change: Callable[[RouteState], None]) -> StateChange:
        """Apply ``change`` to ``route``'s stored state, atomically with respect to
        every other writer, and return what happened."""
        ...

    def update_routes(
        self, routes: Sequence[str], change: Callable[[RouteState], None]
    ) -> list[StateChange]:
        """Apply ``change`` to each of ``routes`` in one atomic write: every reader sees
        all of them changed or none (a canary group). One ``StateChange`` per route,
        in order; if ``change`` raises, nothing is written."""
        ...

    def changed(self) -> bool:
        """Cheaply: has anyone written since this store last loaded or wrote?"""
        ...


@final
class MemoryStateStore:
    """A ``StateStore`` that keeps nothing on disk (tests; ``--legacy`` without a
    state directory). Shared by reference, it also stands in for a file between
    several ``RuntimeState`` objects in one process."""

    __slots__ = ("_lock", "_routes", "_seen", "_version")

    def __init__(self) -> None:
        self._routes: dict[str, RouteState] = {}
        self._lock = threading.Lock()
        self._version = 0
        self._seen = 0

    def load(self) -> dict[str, RouteState]:
        with self._lock:
            self._seen = self._version
            return {n: s.copy() for n, s in self._routes.items()}

    def save(self, routes: Mapping[str, RouteState]) -> None:
        with self._lock:
            self._routes = {n: s.copy() for n, s in routes.items() if not s.is_default}
            self._version += 1
            self._seen = self._version

    def update(self, route: str, change: Callable[[RouteState], None]) -> StateChange:
        return self.update_routes((route,), change)[0]

    def update_routes(
        self, routes: Sequence[str], change: Callable[[RouteState], None]
    ) -> list[StateChange]:
        with self._lock:
            results = _change(self._routes, routes, change)
            self._routes = dict(results[0].routes) if results else self._routes
            self._version += 1
            self._seen = self._version
            return results

    def changed(self) -> bool:
        return self._version != self._seen


_Fingerprint = tuple[int, int, int, int]  # device, inode, mtime_ns, size


@final
class FileStateStore:
    """The state as one JSON file, shared by every worker through the file system.

    ``path`` is the state file (``<state.dir>/state.json``); its directory is created
    on the first write. Writes go to a temp file in the same directory, are fsynced,
    then ``os.replace``d over the file (readers see the old or the new file, never
    half of one), under an exclusive ``flock`` on ``<path>.lock`` so concurrent
    read-modify-writes from several processes serialise. ``changed()`` compares
    the file's (device, inode, mtime_ns, size) with what this store last read or
    wrote; every write makes a new inode, so a change is seen even when the clock
    is coarse.
    """

    __slots__ = ("_lock", "_seen", "path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seen: _Fingerprint | None = None

    @classmethod
    def in_dir(cls, directory: str | os.PathLike[str]) -> FileStateStore:
        """The store for a ``state.dir``."""
        return cls(Path(directory) / STATE_FILE)

    def load(self) -> dict[str, RouteState]:
        with self._lock:
            routes, self._seen = self._read()
            return routes

    def save(self, routes: Mapping[str, RouteState]) -> None:
        with self._lock, self._refused(), self._exclusive():
            self._seen = self._write(routes)

    def update(self, route: str, change: Callable[[RouteState], None]) -> StateChange:
        return self.update_routes((route,), change)[0]

    def update_routes(
        self, routes: Sequence[str], change: Callable[[RouteState], None]
    ) -> list[StateChange]:
        """Raises ``StateNotPersisted`` when the file system refuses the write (or the
        read before it), ``StateFileError`` when the file holds no valid state: then no
        route of ``routes`` changed."""
        with self._lock, self._refused(), self._exclusive():
            current, _ = self._read()
            results = _change(current, routes, change)
            if results:  # one file replace for every route: readers see all or none
                self._seen = self._write(results[0].routes)
            return results

    def changed(self) -> bool:
        return self._fingerprint() != self._seen

    # -- internals

    def _fingerprint(self) -> _Fingerprint | None:
        try:
            st = os.stat(self.path)
        except OSError:  # missing, or its directory is gone or is a file now
            return None
        return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size

    def _read(self) -> tuple[dict[str, RouteState], _Fingerprint | None]:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())  # the fingerprint of exactly what is read
                data = f.read()
        except FileNotFoundError:
            return {}, None
        except OSError as err:
            raise StateFileError(f"cannot read {self.path}: {err.strerror or err}") from err
        seen = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        return _parse(data, str(self.path)), seen

    def _write(self, routes: Mapping[str, RouteState]) -> _Fingerprint:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        body = {
            "version": _FORMAT,
            "routes": {n: s.to_dict() for n, s in sorted(routes.items()) if not s.is_default},
        }
        data = (json.dumps(body, indent=1, sort_keys=True) + "\n").encode()
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(directory)
        st = os.stat(self.path)
        return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size

    @contextlib.contextmanager
    def _refused(self) -> Iterator[None]:
        """``OSError`` (and a read that failed for one) as ``StateNotPersisted``."""
        try:
            yield
        except OSError as err:
            raise StateNotPersisted(f"cannot write {self.path}: {err.strerror or err}") from err
        except StateFileError as err:
            if isinstance(err.__cause__, OSError):
                raise StateNotPersisted(str(err)) from err
            raise

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold ``<path>.lock`` exclusively (between processes, where POSIX allows)."""
        if sys.platform == "win32":  # pragma: no cover
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _change(
    routes: Mapping[str, RouteState], names: Sequence[str], change: Callable[[RouteState], None]
) -> list[StateChange]:
    """``change`` applied to each of ``names`` (once each) on a copy of ``routes``:
    one ``StateChange`` per name, all sharing the resulting ``routes``."""
    updated = dict(routes)
    steps = []
    for name in dict.fromkeys(names):
        before = updated.get(name) or RouteState()
        after = before.copy()
        change(after)  # may raise: then nothing is written
        if after.is_default:
            updated.pop(name, None)
        else:
            updated[name] = after
        steps.append((name, before.copy(), after))
    return [StateChange(route=n, before=b, after=a, routes=updated) for n, b, a in steps]


def _parse(data: bytes, where: str) -> dict[str, RouteState]:
    if not data.strip():
        return {}  # an empty file: nothing stored (someone truncated it by hand)
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise StateFileError(f"{where} is not valid JSON: {err}") from None
    if not isinstance(body, dict) or not isinstance(body.get("routes", {}), dict):
        raise StateFileError(f'{where} must be an object like {{"routes": {{...}}}}')
    version = body.get("version", _FORMAT)
    if version != _FORMAT:
        raise StateFileError(f"{where} has format version {version!r}; this strangler reads 1")
    routes: dict[str, RouteState] = {}
    for name, fields in body.get("routes", {}).items():
        state = RouteState.from_dict(fields, what=f"{where}: route {name!r}")
        if not state.is_default:
            routes[name] = state
    return routes


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- audit log


@final
class AuditLog:
    """Append-only record of release changes: one JSON object per line.

    ``{"time": "2026-01-01T12:00:00.000Z", "who": "admin@10.0.0.7", "action": "kill",
    "target": "invoices-read", "before": {...}, "after": {...}}``, then any further
    fields the writer gives (``None`` ones left out): ``reason`` (the operator's
    ``--reason``, or what tripped a guard), ``group`` and ``routes`` (a canary group
    that moved as one: the group's name and every route it moved), ``detached``
    (an ``--only-route`` write on a grouped route: the group it left behind). Readers
    must ignore fields they do not know; existing fields are never renamed.

    ``who`` names the actor (``"admin@<client address>"``, ``"guard"``,
    ``"cli:<user>"``): never a token. As a second line of defence, any key under
    ``before``/``after`` whose name looks secret (token, secret, password,
    authorization, cookie, api_key) is written as ``"[redacted]"``. Each line is
    written with one ``write`` on an ``O_APPEND`` descriptor, so lines from several
    workers never interleave. The file is opened per append (rotation-friendly).
    """

    __slots__ = ("_clock", "_lock", "path")

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def in_dir(cls, directory: str | os.PathLike[str]) -> AuditLog:
        return cls(Path(directory) / AUDIT_FILE)

    def append(
        self,
        who: str,
        action: str,
        route: str,
        before: Mapping[str, object] | None,
        after: Mapping[str, object] | None,
        **fields: object,
    ) -> dict[str, object]:
        """Write one entry and return it. ``fields``: more keys (``reason``, ``group``,
        ``routes``, ...) after the fixed ones; those that are ``None`` are left out."""
        stamp = datetime.fromtimestamp(self._clock(), UTC)
        entry: dict[str, object] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "who": who,
            "action": action,
            "target": route,
            "before": _redact(before),
            "after": _redact(after),
        }
        for key, value in fields.items():
            if value is not None and key not in entry:
                entry[key] = _REDACTED if _secret(key) else _redact(value)
        line = (json.dumps(entry, sort_keys=False, default=str) + "\n").encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        return entry

    def tail(self, limit: int = 50) -> list[dict[str, object]]:
        """The last ``limit`` entries, oldest first (``[]`` without a log). Reads the
        file backwards in blocks, so a long log costs no more than its end. A line
        that is not a JSON object (hand-edited, cut) is skipped."""
        if limit <= 0:
            return []
        found: list[dict[str, object]] = []
        try:
            with open(self.path, "rb") as f:
                pos = f.seek(0, os.SEEK_END)
                rest = b""  # the start of the earliest line read so far, maybe partial
                while pos > 0 and len(found) < limit:
                    step = min(64 * 1024, pos)
                    pos -= step
                    f.seek(pos)
                    lines = (f.read(step) + rest).split(b"\n")
                    rest = lines.pop(0) if pos > 0 else b""
                    found[:0] = _entries(lines)
        except FileNotFoundError:
            return []
        return found[-limit:]


def _entries(lines: list[bytes]) -> list[dict[str, object]]:
    out = []
    for raw in lines:
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            continue
        if isinstance(item, dict):
            out.append(item)
    return out


def _redact(value: object) -> object:
    """``value`` with every secret-looking mapping key's value replaced."""
    if isinstance(value, Mapping):
        return {str(k): (_REDACTED if _secret(str(k)) else _redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def _secret(key: str) -> bool:
    folded = key.lower().replace("-", "_")
    return any(word in folded for word in _SECRET_WORDS)
