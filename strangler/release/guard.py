"""SLO guards: watch a route's new side over a sliding window, trip when it breaches.

``SloGuard(slo, clock)`` keeps a ring of ``SLOTS`` (60) time slots spanning the
SLO's window. ``observe(ok, latency)`` is the hot path: O(1), no allocation, a
handful of integer increments into the current slot (reset first when the ring has
come round). ``evaluate(now)`` sums the slots still inside the window (the current
one included, so the window covers between ``window - window/60`` and ``window``
seconds of traffic) into a ``GuardVerdict``.

How the verdict is reached:

- nothing is judged below ``min_requests`` answers in the window (``breached`` is
  false, ``enough`` says why);
- **error rate**: ``errors / requests > error_rate`` breaches;
- **p99 latency**: p99 is over the target exactly when more than 1% of answers are
  slower than it, so each slot counts answers slower than ``latency_p99`` and the
  breach test is exact (``slow * 100 > requests``). The reported ``p99`` value is an
  estimate from a small log-scale histogram per slot (bins 1.5x apart, capped at the
  slowest answer seen): good for a status page, never used to trip;
- ``budget_remaining`` = ``1 - error_ratio / error_rate``, clamped to [0, 1] (1.0
  with no answers; ``None`` without an ``error_rate``).

What counts as an answer is the caller's choice; the server observes every answer
from the route's new side (``ReleasePlan.observed``): ``ok`` is false for a forward
error or a 5xx status, and ``latency`` is seconds until the response head (or the
failure). A fallback retry on the primary is not observed.

``Guards`` holds one guard per route with an ``slo``, survives reloads
(``reconcile`` keeps a guard whose SLO did not change, so its window is kept), and
``check`` trips the ``RouteState`` of each breached route. A tripped guard stays
tripped (the new side gets no traffic, so it could never recover on its own
evidence) until an operator resets it: ``RouteState.reset_guard`` plus
``Guards.reset(name)`` to start the window afresh. With ``--workers N`` the slots live
in files every worker maps (``windows``): each worker judges, and reports, the whole
host's traffic, and a reset forgets every worker's answers; a trip reaches the other
workers (and replicas) through the state store.

>>> from strangler.config.model import Slo
>>> now = [0.0]
>>> guard = SloGuard(Slo(error_rate=0.01, window=60.0, min_requests=10), clock=lambda: now[0])
>>> for i in range(20):
...     guard.observe(ok=i % 5 != 0, latency=0.05)
>>> verdict = guard.evaluate()
>>> verdict.requests, verdict.errors, verdict.breached
(20, 4, True)
>>> verdict.reason
'error rate 20% over the last 1m exceeds 1% (4 of 20 answers failed)'
>>> now[0] = 61.0
>>> guard.evaluate().requests  # the window has slid past them
0
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, final

from strangler.config.model import Slo
from strangler.release.state import RuntimeState
from strangler.release.windows import NEVER, Segment, SharedWindows, window_key

__all__ = ["BOUNDS", "SLOTS", "GuardVerdict", "Guards", "SloGuard", "Trip"]

SLOTS: Final = 60
"""Time slots per window."""

BOUNDS: Final[tuple[float, ...]] = tuple(0.001 * 1.5**k for k in range(28))
"""Upper bounds (seconds) of the latency histogram bins: 1ms to ~57s, 1.5x apart;
one more bin holds anything slower."""

_BINS: Final = len(BOUNDS) + 1
_P99_SLOW_SHARE: Final = 100  # p99 > target  ⟺  slow * 100 > requests


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class GuardVerdict:
    """One evaluation of a route's SLO over its window.

    ``error_ratio`` and ``slow_ratio`` are 0.0 without answers; ``p99`` is ``None``
    without answers. ``reason`` says what breached (``None`` if nothing did).
    """

    requests: int
    errors: int
    slow: int  # answers slower than latency_p99 (0 without a latency target)
    error_ratio: float
    slow_ratio: float
    p99: float | None
    enough: bool  # requests >= min_requests: the verdict counts
    breached: bool
    reason: str | None
    budget_remaining: float | None

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "slow": self.slow,
            "error_ratio": self.error_ratio,
            "slow_ratio": self.slow_ratio,
            "p99": self.p99,
            "enough": self.enough,
            "breached": self.breached,
            "reason": self.reason,
            "budget_remaining": self.budget_remaining,
        }


@final
class SloGuard:
    """A sliding window of one route's new-side answers, judged against its SLO.

    ``clock`` returns seconds (monotonic in the server: ``time.monotonic``, one clock
    for every process of the host). ``shared``: the workers' common directory
    (``windows.SharedWindows``), so the verdict covers every worker's answers; without
    it the window is this process's. Not thread-safe: observe and evaluate from the
    event loop.
    """

    __slots__ = ("_clock", "_key", "_own", "_shared", "_threshold", "_values", "_width", "slo")

    def __init__(
        self,
        slo: Slo,
        clock: Callable[[], float],
        *,
        shared: SharedWindows | None = None,
        route: str = "",
    ) -> None:
        if slo.window <= 0:
            raise ValueError(f"an SLO window must be more than 0, got {slo.window!r}")
        self.slo = slo
        self._clock = clock
        self._width = slo.window / SLOTS
        self._threshold = math.inf if slo.latency_p99 is None else slo.latency_p99
        self._shared = shared
        self._key = window_key(route, slo)
        self._own = (
            Segment.in_memory(SLOTS, _ROW) if shared is None else shared.own(self._key, SLOTS, _ROW)
        )
        self._values = self._own.values  # the hot path's one attribute lookup

    def observe(self, ok: bool, latency: float) -> None:
        """Count one answer: ``ok`` false for a failure; ``latency`` in seconds."""
        tick = int(self._clock() // self._width)
        row = (tick % SLOTS) * _ROW
        v = self._values
        if v[row] != tick:
            _clear(v, row, tick)
        v[row + _COUNT] += 1
        if not ok:
            v[row + _ERRORS] += 1
        if latency > self._threshold:
            v[row + _SLOW] += 1
        ns = int(latency * 1e9)
        if ns > v[row + _MAX]:
            v[row + _MAX] = ns
        v[row + _HIST + bisect_left(BOUNDS, latency)] += 1

    def evaluate(self, now: float | None = None) -> GuardVerdict:
        """The verdict over the window ending at ``now`` (default: the clock)."""
        tick = int((self._clock() if now is None else now) // self._width)
        oldest = tick - SLOTS + 1
        segments = [self._values]
        if self._shared is not None:
            oldest = max(oldest, self._shared.reset_tick(self._key) + 1)
            segments += [p.values for p in self._shared.peers(self._key, SLOTS * _ROW)]
        requests = errors = slow = slowest = 0
        live: list[tuple[memoryview, int]] = []
        for v in segments:
            for row in range(0, SLOTS * _ROW, _ROW):
                if oldest <= v[row] <= tick:
                    live.append((v, row))
                    requests += v[row + _COUNT]
                    errors += v[row + _ERRORS]
                    slow += v[row + _SLOW]
                    slowest = max(slowest, v[row + _MAX])
        return self._verdict(requests, errors, slow, _p99(live, requests, slowest / 1e9))

    def reset(self) -> None:
        """Forget every answer (after an operator resets a tripped guard): this
        process's, and with a shared directory every worker's."""
        for row in range(0, SLOTS * _ROW, _ROW):
            _clear(self._values, row, NEVER)
        if self._shared is not None:
            self._shared.reset(self._key, int(self._clock() // self._width))

    def close(self) -> None:
        """The guard is gone (its route or SLO changed): give its segment back."""
        if self._shared is not None:
            self._shared.drop(self._own)

    # -- internals

    def _verdict(self, requests: int, errors: int, slow: int, p99: float | None) -> GuardVerdict:
        slo = self.slo
        error_ratio = errors / requests if requests else 0.0
        slow_ratio = slow / requests if requests else 0.0
        enough = requests >= slo.min_requests
        reasons = []
        window = _duration(slo.window)
        if enough and slo.error_rate is not None and error_ratio > slo.error_rate:
            reasons.append(
                f"error rate {_pct(error_ratio)} over the last {window} exceeds "
                f"{_pct(slo.error_rate)} ({errors} of {requests} answers failed)"
            )
        if enough and slo.latency_p99 is not None and slow * _P99_SLOW_SHARE > requests:
            estimate = "" if p99 is None else f", p99 ≈ {_duration(p99)}"
            reasons.append(
                f"p99 latency over the last {window} exceeds {_duration(slo.latency_p99)} "
                f"({slow} of {requests} answers slower{estimate})"
            )
        budget = None
        if slo.error_rate is not None:
            budget = min(1.0, max(0.0, 1.0 - error_ratio / slo.error_rate))
        return GuardVerdict(
            requests=requests,
            errors=errors,
            slow=slow,
            error_ratio=error_ratio,
            slow_ratio=slow_ratio,
            p99=p99,
            enough=enough,
            breached=bool(reasons),
            reason="; ".join(reasons) or None,
            budget_remaining=budget,
        )


_COUNT, _ERRORS, _SLOW, _MAX, _HIST = 1, 2, 3, 4, 5  # a row: tick, these, then the bins
_ROW: Final = _HIST + _BINS
_ZEROS: Final = memoryview(array("q", bytes(8 * (_ROW - 1))))


def _clear(v: memoryview, row: int, tick: int) -> None:
    v[row] = NEVER  # unusable while cleared: a reader in another worker skips it
    v[row + 1 : row + _ROW] = _ZEROS
    v[row] = tick


def _p99(live: list[tuple[memoryview, int]], requests: int, slowest: float) -> float | None:
    if not requests:
        return None
    rank = math.ceil(0.99 * requests)  # the 99th percentile answer, 1-based
    seen = 0
    for b in range(_BINS):
        seen += sum(v[row + _HIST + b] for v, row in live)
        if seen >= rank:
            return slowest if b >= len(BOUNDS) else min(BOUNDS[b], slowest)
    return slowest  # pragma: no cover - the bins hold every answer


@final
@dataclass(frozen=True, slots=True)
class Trip:
    """A guard that ``Guards.check`` just tripped: persist it, audit it, log it.

    ``routes``: every route it rolled back (``route`` and, for a canary group, the
    rest of the group, in one step); ``group`` names that group."""

    route: str
    verdict: GuardVerdict
    routes: tuple[str, ...] = ()
    group: str | None = None

    @property
    def reason(self) -> str:
        """What the tripped routes record as ``guard_reason``."""
        why = self.verdict.reason or "SLO breached"
        if self.group is None:
            return why
        return f"group {self.group!r} rolled back by route {self.route!r}: {why}"


@final
class Guards:
    """One ``SloGuard`` per route with an ``slo``, kept across reloads."""

    __slots__ = ("_clock", "_guards", "_shared")

    def __init__(self, clock: Callable[[], float], shared: Path | None = None) -> None:
        """``shared``: the workers' common directory for the windows (``None``: one
        process, the windows in memory)."""
        self._clock = clock
        self._guards: dict[str, SloGuard] = {}
        self._shared = None if shared is None else SharedWindows(shared)

    def reconcile(self, slos: Mapping[str, Slo | None]) -> None:
        """Route name → its SLO (``None``: no guard). A guard whose SLO is unchanged
        keeps its window; a changed SLO starts a new one; removed routes go."""
        kept: dict[str, SloGuard] = {}
        for name, slo in slos.items():
            if slo is None:
                continue
            old = self._guards.get(name)
            if old is not None and old.slo == slo:
                kept[name] = old
            else:
                kept[name] = SloGuard(slo, self._clock, shared=self._shared, route=name)
        for name, guard in self._guards.items():
            if kept.get(name) is not guard:
                guard.close()
        self._guards = kept

    def get(self, route: str) -> SloGuard | None:
        return self._guards.get(route)

    def reset(self, route: str) -> None:
        guard = self._guards.get(route)
        if guard is not None:
            guard.reset()

    def verdicts(self, now: float | None = None) -> dict[str, GuardVerdict]:
        """Every guard's verdict (status pages, metrics)."""
        return {name: g.evaluate(now) for name, g in self._guards.items()}

    def check(
        self,
        state: RuntimeState,
        *,
        now: float,
        wall: float,
        groups: Mapping[str, tuple[str, tuple[str, ...]]] | None = None,
    ) -> list[Trip]:
        """Evaluate every guard at ``now`` (the guards' clock) and trip the state of
        each breached route not tripped yet, stamped ``wall`` (epoch seconds).

        ``groups``: route name → (its canary group, every route of that group). A
        breach on a grouped route trips the whole group at once: a user would
        otherwise be on the new side for some routes of the group and not others.
        Returns the new trips; does no I/O."""
        trips = []
        for name, guard in self._guards.items():
            route_state = state.for_route(name)
            if route_state.guard_tripped:
                continue
            verdict = guard.evaluate(now)
            if verdict.breached:
                group, members = (groups or {}).get(name, (None, (name,)))
                trip = Trip(name, verdict, members, group)
                for member in members:  # no await in between: no request sees half
                    member_state = state.for_route(member)
                    if not member_state.guard_tripped:
                        member_state.trip(trip.reason, at=wall)
                trips.append(trip)
        return trips

    def __len__(self) -> int:
        return len(self._guards)


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.3g}%"


def _duration(seconds: float) -> str:
    """300 → ``'5m'``, 0.3 → ``'300ms'``, 90 → ``'90s'``."""
    if seconds < 1:
        return f"{seconds * 1000:.3g}ms"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:.3g}s"
