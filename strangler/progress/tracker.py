"""``ProgressTracker``: one per worker process, fed by the pipeline after every response.

The request path calls ``record`` and nothing else; everything derived (status, backlog,
decommission readiness, metrics) is computed at read time from ``export()`` merged
with the other workers' saved files.

Cost of ``record`` (``tests/bench/bench_progress.py``): a dict lookup and two or three
integer increments for a routed request, one clock read more when legacy answered; an
unrouted request adds a memo lookup of its path's template (``progress.ignore`` is
applied when a path enters the memo), a Space-Saving hit and its status class bit
(``state.NOT_FOUND``). A path seen for the first time (or evicted from the memo) pays
the folding regexes. The windows cost nothing here: ``rotate`` (flusher, reads) moves
what the counters grew by into time buckets (``windows``).

Memory is bounded: routes by the config's route names, learned endpoints by
``max_endpoints`` (``topk.SpaceSaving``), the path → template memo by ``memo_size``
entries (cleared when full: hot paths are back in it at their next request), and
templates and keys by ``fold.MAX_TEMPLATE`` / ``MAX_KEY`` characters.

Persistence, with ``--workers N``: worker ``i`` saves to ``<state_dir>/progress-<i>.json``
(``state_file``), loads that same file when it starts (``load``), and reads the others
as peers. The worker id must be stable across restarts (the worker's index, not its
pid): a restarted worker then continues its own file, and a file no running worker
owns any more still counts in the merged view (its requests happened). ``run_flusher``
saves every ``interval`` seconds, refreshes the peers, and saves once more when it is
cancelled at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, final

from strangler.config.model import UNROUTED
from strangler.progress.fold import fold_path, ignore_pattern
from strangler.progress.state import (
    DEFAULT_MAX_ENDPOINTS,
    NOT_FOUND,
    EndpointCounts,
    Mark,
    ProgressState,
    RouteCounts,
    merge_states,
    read_state,
    state_files,
    write_state,
)
from strangler.progress.status import (
    StatusJSON,
    attribute,
    claimed_by,
    status_model,
)
from strangler.progress.topk import SpaceSaving
from strangler.progress.windows import KEEP, Series
from strangler.runtime import TARGET_NEW, Snapshot, SnapshotHolder

__all__ = [
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_IDLE_AFTER",
    "DEFAULT_MEMO_SIZE",
    "MAX_KEY",
    "ProgressTracker",
    "read_peers",
]

log = logging.getLogger("strangler.progress")

DEFAULT_IDLE_AFTER: Final = 14 * 86400.0
DEFAULT_MEMO_SIZE: Final = 4096
DEFAULT_FLUSH_INTERVAL: Final = 5.0
MAX_KEY: Final = 300  # characters of "METHOD /template"
_MEMO_MAX_PATH: Final = 512  # longer paths are folded every time, not memoised
_TOUCH: Final = 1.0  # a route's last_legacy moves at most once a second
_WORKER_ID: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_IGNORED: Final = ""  # the memo's template for a path ``progress.ignore`` matches
# Status → its bit in ``EndpointCounts.classes`` (404/405: NOT_FOUND); every
# three-digit status has an entry, so indexing never fails.
_CLASS_BITS: Final = tuple(
    NOT_FOUND if s in (404, 405) else 1 << (s // 100) if 100 <= s < 600 else 0 for s in range(1000)
)


# A peer file as last parsed: (its stat, the snapshot it was attributed to, the state).
PeerCache = dict[Path, tuple[tuple[int, int, int], "Snapshot | None", ProgressState]]


def read_peers(
    state_dir: Path, exclude: Path, snap: Snapshot | None, cache: PeerCache | None = None
) -> tuple[list[ProgressState], list[tuple[Path, str]]]:
    """Read every worker file in ``state_dir`` but ``exclude``; ``attribute`` each
    against ``snap``. Returns ``(states, [(file, problem), ...])``; blocking (run it
    in a thread: the snapshot is immutable, so that is safe). With ``cache``, a file
    unchanged since it was parsed (same inode, size and mtime) for the same snapshot
    is not parsed again: the states returned are shared, read them only."""
    states: list[ProgressState] = []
    problems: list[tuple[Path, str]] = []
    for f in state_files(state_dir):
        if f == exclude:
            continue
        try:
            st = f.stat()
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            hit = None if cache is None else cache.get(f)
            if hit is not None and hit[0] == stamp and hit[1] is snap:
                states.append(hit[2])
                continue
            s = read_state(f)
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:
            problems.append((f, str(e)))
            continue
        if snap is not None:
            attribute(s, snap)
        if cache is not None:
            cache[f] = (stamp, snap, s)
        states.append(s)
    return states, problems


@final
class ProgressTracker:
    """Per-worker migration progress counters. Not thread-safe: use it from the event
    loop thread only (``record``, ``export``, ``reconcile``); file I/O runs in threads
    on copies."""

    __slots__ = (
        "_claimed",
        "_clock",
        "_ignore",
        "_marks",
        "_memo",
        "_memo_size",
        "_peer_cache",
        "_peers",
        "_pruned",
        "_reconciled",
        "_rotated",
        "_routes",
        "_saved_seq",
        "_seq",
        "_series",
        "_top",
        "_unrouted",
        "_warned",
        "_write_lock",
        "holder",
        "idle_after",
        "worker",
    )

    def __init__(
        self,
        holder: SnapshotHolder | None = None,
        *,
        worker: str = "0",
        max_endpoints: int = DEFAULT_MAX_ENDPOINTS,
        memo_size: int = DEFAULT_MEMO_SIZE,
        idle_after: float = DEFAULT_IDLE_AFTER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``holder``: the server's snapshot holder (the flusher reconciles against its
        current snapshot). ``worker``: this process's stable id (its index).
        ``clock``: Unix time in seconds; tests inject a fake one. ``idle_after`` holds
        until the first ``reconcile``, which takes the config's ``progress.idle_after``."""
        if not _WORKER_ID.fullmatch(worker):
            raise ValueError(f"worker id must be 1-64 of [A-Za-z0-9_.-], not {worker!r}")
        if idle_after <= 0:
            raise ValueError(f"idle_after must be positive, not {idle_after}")
        self.holder = holder
        self.worker = worker
        self.idle_after = idle_after
        self._clock = clock
        self._top = SpaceSaving(max_endpoints)
        self._memo: dict[str, str] = {}
        self._memo_size = max(memo_size, 1)
        self._unrouted = RouteCounts(since=clock())
        self._routes: dict[str, RouteCounts] = {UNROUTED: self._unrouted}
        # Time buckets (``windows``): filled by ``rotate`` from what the counters grew
        # by since ``_rotated`` (route → [legacy, new] at the last rotation).
        self._series: dict[str, Series] = {}
        self._rotated: dict[str, tuple[int, int]] = {}
        self._marks: dict[str, dict[int, Mark]] = {"five": {}, "hour": {}}
        self._claimed: set[str] = set()
        self._pruned = -1  # the minute of the last prune
        self._peer_cache: PeerCache = {}
        self._ignore: re.Pattern[str] | None = None
        self._reconciled: Snapshot | None = None
        self._peers: tuple[ProgressState, ...] = ()
        self._warned: set[tuple[Path, str]] = set()
        self._write_lock = threading.Lock()
        self._seq = 0  # save requests issued
        self._saved_seq = 0  # the newest one written (guarded by _write_lock)

    # -- the request path ---------------------------------------------------------

    def record(self, route: str, target: str, method: str, path: str, status: int) -> None:
        """Count one answered request of ``route``, answered by a ``target`` ("legacy"
        or "new") upstream. ``status``: what the client got (499 when the exchange was
        cut). Never raises, never does I/O."""
        counts = self._routes.get(route)
        if counts is None:
            counts = self._add_route(route)
        if status >= 500:
            counts.errors += 1
        if target == TARGET_NEW:
            counts.new += 1
            return
        counts.legacy += 1
        now = self._clock()
        if now - counts.last_legacy >= _TOUCH:
            counts.last_legacy = now
        if counts is not self._unrouted:
            return
        template = self._memo.get(path)
        if template is None:
            template = self._remember(path)
        if template is _IGNORED:
            return
        key = method + " " + template
        e = self._top.table.get(key)
        if e is None:
            self._learn(key, now, _CLASS_BITS[status])
        else:
            e.count += 1
            e.last_seen = now
            e.classes |= _CLASS_BITS[status]

    def _add_route(self, name: str) -> RouteCounts:
        counts = self._routes[name] = RouteCounts(since=self._clock())
        return counts

    def _remember(self, path: str) -> str:
        ignore = self._ignore
        template = _IGNORED if ignore is not None and ignore.fullmatch(path) else fold_path(path)
        if len(path) <= _MEMO_MAX_PATH:
            if len(self._memo) >= self._memo_size:
                self._memo.clear()
            self._memo[path] = template
        return template

    def _learn(self, key: str, now: float, bit: int) -> None:
        if len(key) > MAX_KEY:
            key = key[:MAX_KEY] + "…"
            e = self._top.table.get(key)
            if e is not None:
                e.count += 1
                e.last_seen = now
                e.classes |= bit
                return
        self._top.insert(key, now)
        self._top.table[key].classes = bit

    # -- reading ------------------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    @property
    def peers(self) -> tuple[ProgressState, ...]:
        """The other workers' states as last read (``refresh_peers``, the flusher)."""
        return self._peers

    @property
    def capacity(self) -> int:
        """The most learned endpoints this worker tracks."""
        return self._top.capacity

    @property
    def memo_entries(self) -> int:
        """Paths in the path → template memo now (at most ``memo_size``)."""
        return len(self._memo)

    @property
    def endpoint_keys(self) -> frozenset[str]:
        return frozenset(self._top.table)

    def route_counts(self) -> dict[str, RouteCounts]:
        """A copy of this worker's per-route counters."""
        return {
            n: RouteCounts(r.legacy, r.new, r.errors, r.last_legacy, r.since)
            for n, r in self._routes.items()
        }

    def export(self) -> ProgressState:
        """A deep copy of this worker's state, ``rotate``d first: O(routes x buckets +
        endpoints)."""
        self.rotate()
        return ProgressState(
            routes=self.route_counts(),
            endpoints={
                k: EndpointCounts(e.count, e.overcount, e.last_seen, e.classes)
                for k, e in self._top.table.items()
            },
            floor=self._top.floor,
            capacity=self._top.capacity,
            series={n: s.copy() for n, s in self._series.items()},
            marks={
                t: {i: Mark(m.seen_at, m.migrated, m.total) for i, m in marks.items()}
                for t, marks in self._marks.items()
            },
            claimed=set(self._claimed),
        )

    def rotate(self, now: float | None = None) -> None:
        """Move what the counters grew by since the last rotation into the time
        buckets of ``now`` (``windows``), note the config's migration state for the
        history, and drop buckets past their tier's age. O(routes); the flusher runs
        it every interval and every read runs it first, so no request waits on it."""
        when = self._clock() if now is None else now
        rotated = self._rotated
        for name, c in self._routes.items():
            before = rotated.get(name, (0, 0))
            legacy, new = c.legacy - before[0], c.new - before[1]
            if legacy or new:
                series = self._series.get(name)
                if series is None:
                    series = self._series[name] = Series()
                series.add(when, legacy=max(legacy, 0), new=max(new, 0))
                rotated[name] = (c.legacy, c.new)
        minute = int(when // 60)
        if minute == self._pruned:
            return  # buckets age by the minute: prune and note the config once a minute
        self._pruned = minute
        for series in self._series.values():
            series.prune(when)
        snap = self.holder.current if self.holder is not None else self._reconciled
        if snap is not None:
            migrated = sum(1 for r in snap.routes if r.target == TARGET_NEW)
            for tier in ("five", "hour"):
                width, keep = KEEP[tier]
                marks = self._marks[tier]
                marks[int(when // width)] = Mark(when, migrated, len(snap.routes))
                oldest = int(when // width) - keep + 1
                for i in [i for i in marks if i < oldest]:
                    del marks[i]

    def reconcile(self, snap: Snapshot) -> None:
        """Catch up with a (new) snapshot, once per snapshot: start tracking routes
        that have no counters yet (``since`` = now), and hand learned endpoints that a
        route now claims over to that route (``status.attribute``)."""
        if snap is self._reconciled:
            return
        now = self._clock()
        progress = snap.config.progress
        self.idle_after = progress.idle_after
        ignore = ignore_pattern(progress.ignore)
        if ignore != self._ignore:
            self._ignore = ignore
            self._memo.clear()
            if ignore is not None:
                for key in [k for k in self._top.table if ignore.fullmatch(k.partition(" ")[2])]:
                    self._top.discard(key)
        for compiled in snap.routes:
            if compiled.name not in self._routes:
                self._routes[compiled.name] = RouteCounts(since=now)
        for key in list(self._top.table):
            route = claimed_by(snap, key)
            if route is None:
                continue
            e = self._top.discard(key)
            if len(self._claimed) < self._top.capacity:
                self._claimed.add(key)
            counts = self._routes.get(route.name) or self._add_route(route.name)
            if e is not None:
                counts.last_legacy = max(counts.last_legacy, e.last_seen)
        self._reconciled = snap

    def merged(self, snap: Snapshot) -> ProgressState:
        """This worker's live state merged with the peers as last read."""
        self.reconcile(snap)
        return merge_states([self.export(), *self._peers])

    def snapshot(self, snap: Snapshot, now: float | None = None) -> StatusJSON:
        """The status model (see ``status.StatusJSON``), merged with the peers as last
        read. Read time only: O(routes + workers x endpoints)."""
        state = self.merged(snap)
        when = self._clock() if now is None else now
        return status_model(state, snap, when, idle_after=self.idle_after)

    # -- persistence --------------------------------------------------------------

    def state_file(self, state_dir: Path) -> Path:
        return state_dir / f"progress-{self.worker}.json"

    def save(self, path: Path) -> None:
        """Write this worker's state to ``path`` atomically (blocking; raises
        ``OSError``)."""
        self._write(path, self.export(), self._next_seq())

    def load(self, path: Path) -> bool:
        """Add the state saved at ``path`` to this tracker (counts summed, latest
        times kept). Call once, when the worker starts. A missing file is a fresh
        start; an unreadable one is logged and ignored. True when something loaded."""
        try:
            saved = read_state(path)
        except FileNotFoundError:
            return False
        except (OSError, ValueError) as e:
            log.warning("ignoring progress state %s: %s", path, e)
            return False
        merged = merge_states([self.export(), saved])
        self._routes = merged.routes
        unrouted = self._routes.get(UNROUTED)
        if unrouted is None:
            unrouted = self._routes[UNROUTED] = RouteCounts(since=self._clock())
        self._unrouted = unrouted
        self._top.replace(merged.endpoints, merged.floor)
        self._series = merged.series
        self._marks = {"five": {}, "hour": {}} | merged.marks
        self._claimed = merged.claimed
        # The loaded counts are in the loaded buckets already.
        self._rotated = {n: (c.legacy, c.new) for n, c in self._routes.items()}
        self._reconciled = None
        return True

    async def refresh_peers(
        self, state_dir: Path, snap: Snapshot | None = None
    ) -> tuple[ProgressState, ...]:
        """Read the other workers' files (in a thread), ``attribute`` them against
        ``snap`` (default: the holder's current one) and keep them as ``peers``."""
        if snap is None:
            snap = self.holder.current if self.holder is not None else self._reconciled
        states, problems = await asyncio.to_thread(
            read_peers, state_dir, self.state_file(state_dir), snap, self._peer_cache
        )
        for problem in problems:
            if problem not in self._warned:
                self._warned.add(problem)
                log.warning("skipping progress state %s: %s", *problem)
        self._peers = tuple(states)
        return self._peers

    async def flush(self, state_dir: Path) -> None:
        """Reconcile, save this worker's file (in a thread), refresh the peers."""
        if self.holder is not None:
            self.reconcile(self.holder.current)
        state, seq = self.export(), self._next_seq()
        await asyncio.to_thread(self._write, self.state_file(state_dir), state, seq)
        await self.refresh_peers(state_dir)

    async def run_flusher(self, state_dir: Path, interval: float = DEFAULT_FLUSH_INTERVAL) -> None:
        """Flush now and every ``interval`` seconds until cancelled; then save a last
        time (synchronously, so a shutdown loses nothing). A failing write is logged
        once and retried at the next tick."""
        failing = False
        try:
            while True:
                try:
                    await self.flush(state_dir)
                    failing = False
                except OSError as e:
                    if not failing:
                        log.warning("cannot save progress state in %s: %s", state_dir, e)
                    failing = True
                await asyncio.sleep(interval)
        finally:
            try:
                if self.holder is not None:
                    self.reconcile(self.holder.current)
                self.save(self.state_file(state_dir))
            except OSError as e:
                log.warning("cannot save progress state in %s: %s", state_dir, e)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _write(self, path: Path, state: ProgressState, seq: int) -> None:
        # A final save at shutdown may race a flusher write still running in its
        # thread: the newer export wins, whichever finishes first.
        with self._write_lock:
            if seq <= self._saved_seq:
                return
            write_state(path, state, worker=self.worker, saved_at=self._clock())
            self._saved_seq = seq
