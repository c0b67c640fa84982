"""Release controls at run time: the state, the store behind it, the guards and the audit.

One ``ReleaseControls`` per worker, owned by the server. It is what the admin API
writes through and what the request path reads:

- ``state``: per route kill switch, percent override, guard trip; read per request.
- writes (``kill``, ``enable``, ``set_percent``, ``reset_guard``) go through the store
  (an atomic, locked read-modify-write of the state file, in a thread), then update
  this worker's ``state`` and append to the audit log;
- ``run()`` polls the store every ``file_poll`` seconds, so a write made by another
  worker (or another replica sharing the file) takes effect here within a poll; and
  evaluates the SLO guards every second, tripping a route that breached its SLO.
- a write the file system refuses (disk full, read-only: ``StateNotPersisted``) still
  takes effect at once, in memory, on every worker (``pending``), and is answered with
  ``persisted=False``; each poll retries storing it until the disk takes it. Meanwhile
  ``store_up`` is False (``strangler_state_store_up``, ``/readyz``).

A tripped guard stays tripped until a person enables the route again: once rolled
back, the new side gets no traffic and could never prove itself healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from strangler.config.model import Slo
from strangler.release.guard import Guards, GuardVerdict
from strangler.release.pending import PendingChanges
from strangler.release.state import (
    AuditLog,
    RouteState,
    RuntimeState,
    StateChange,
    StateFileError,
    StateNotPersisted,
    StateStore,
)

if TYPE_CHECKING:  # the runtime imports release; release only needs its types
    from strangler.runtime import CompiledRoute, SnapshotHolder

log = logging.getLogger("strangler.release")

GUARD_INTERVAL: Final = 1.0


class UnknownRoute(LookupError):
    """A write named a route the loaded config does not have."""


@dataclass(frozen=True, slots=True)
class Event:
    """One audited change, as the admin API shows it."""

    time: float
    who: str
    action: str
    route: str
    before: dict[str, object]
    after: dict[str, object]


class ReleaseControls:
    """Runtime release state of one worker, kept in sync with the state store."""

    def __init__(
        self,
        store: StateStore,
        audit: AuditLog | None,
        *,
        file_poll: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        pending: PendingChanges | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self.pending = pending or PendingChanges(None)
        self._stored: dict[str, RouteState] = {}  # what the store held, last we knew
        self._pending: dict[str, RouteState] = {}  # changes not stored (any worker's)
        self._not_persisted: str | None = None  # why this worker's last write was not
        self.state = RuntimeState()
        self.guards = Guards(clock)
        self.file_poll = file_poll
        self._clock = clock
        self._wall = wall
        self._routes: frozenset[str] = frozenset()
        self._on_change: list[Callable[[Iterable[str]], None]] = []
        self._lock = asyncio.Lock()
        self._store_failing = False

    # -- lifecycle -----------------------------------------------------------------
    def start(self, routes: Mapping[str, Slo | None]) -> None:
        """Load what the store holds (raises ``StateFileError``: a kill switch that
        cannot be read must stop the start, not be silently forgotten)."""
        self._stored = self.store.load()
        pending = self.pending.load()  # a restarted worker keeps the others' pending
        self._pending = pending
        self.state.apply({**self._stored, **pending})
        self.reconcile(routes)

    def reconcile(self, routes: Mapping[str, Slo | None]) -> None:
        """After a (re)load: the routes of the new config, and their SLOs."""
        self._routes = frozenset(routes)
        self.state.reconcile(routes)
        self.guards.reconcile(routes)
        self._changed(routes)

    def on_change(self, callback: Callable[[Iterable[str]], None]) -> None:
        """Call ``callback(route_names)`` whenever routes' state changed (metrics)."""
        self._on_change.append(callback)

    def _changed(self, names: Iterable[str]) -> None:
        names = tuple(names)
        for cb in self._on_change:
            cb(names)

    async def run(self) -> None:
        """Poll the store and evaluate the guards until cancelled."""
        next_guard = self._clock()
        while True:
            await asyncio.sleep(min(self.file_poll, GUARD_INTERVAL))
            await self.sync()
            if self._clock() >= next_guard:
                next_guard = self._clock() + GUARD_INTERVAL
                try:
                    await self.check_guards()
                except StateFileError as e:  # tripped here; the others learn it later
                    log.error("cannot record a guard trip in the release state: %s", e)

    async def sync(self) -> list[str]:
        """Pick up writes made elsewhere (other workers, other replicas), and changes
        the store refused (``pending``, from any worker), retrying to store those."""
        await self._retry_pending()
        pending: dict[str, RouteState] | None = None
        stored: dict[str, RouteState] | None = None
        try:  # first: it must reach this worker even when the state file cannot be read
            if await asyncio.to_thread(self.pending.changed):
                pending = await asyncio.to_thread(self.pending.load)
        except (StateFileError, OSError) as e:
            log.error("cannot read the pending release changes: %s", e)
        try:
            if await asyncio.to_thread(self.store.changed):
                stored = await asyncio.to_thread(self.store.load)
            if self._store_failing:
                log.info("the release state can be read again")
                self._store_failing = False
        except (StateFileError, OSError) as e:
            if not self._store_failing:  # once per outage, not every poll
                log.error("cannot read the release state, keeping what this worker knows: %s", e)
            self._store_failing = True
        if pending is None and stored is None:
            return []
        if stored is not None:
            self._stored = stored
        if pending is not None:
            self._pending = pending
        changed = self.state.apply({**self._stored, **self._pending})
        if changed:
            log.info("release state changed elsewhere for %s", ", ".join(changed))
            self._changed(changed)
        return changed

    async def check_guards(self) -> None:
        for trip in self.guards.check(self.state, now=self._clock(), wall=self._wall()):
            reason = trip.verdict.reason or "SLO breached"
            log.error("SLO guard tripped on route %r: %s; rolled back", trip.route, reason)
            await self._write("guard", "guard-trip", trip.route, self._tripper(reason))

    def _tripper(self, reason: str) -> Callable[[RouteState], None]:
        def change(s: RouteState) -> None:
            s.trip(reason, at=self._wall())

        return change

    # -- writes --------------------------------------------------------------------
    def _known(self, route: str) -> None:
        if route not in self._routes:
            raise UnknownRoute(route)

    async def _write(
        self, who: str, action: str, route: str, change: Callable[[RouteState], None]
    ) -> StateChange:
        async with self._lock:
            try:
                try:
                    await asyncio.to_thread(self.pending.flush, self.store)  # older ones first
                except OSError as e:  # the shared runtime dir itself is unusable
                    log.error("cannot read the pending release changes: %s", e)
                result = await asyncio.to_thread(self.store.update, route, change)
            except StateNotPersisted as e:  # the disk refuses: apply it anyway, store later
                result = await asyncio.to_thread(self._keep_pending, route, change, str(e))
            else:
                self._stored = dict(result.routes)
                self._pending, self._not_persisted = {}, None
            changed = self.state.apply(result.routes)
            if result.changed and self.audit is not None:
                try:
                    await asyncio.to_thread(
                        self.audit.append,
                        who,
                        action,
                        route,
                        result.before.to_dict(),
                        result.after.to_dict(),
                    )
                except OSError as e:  # the same full disk: the change itself stands
                    log.error("cannot append %s of %r to the audit log: %s", action, route, e)
            self._changed(changed)
            return result

    def _keep_pending(
        self, route: str, change: Callable[[RouteState], None], reason: str
    ) -> StateChange:
        """The change, applied on top of what is stored and pending, recorded as
        pending for every worker. Blocking (thread)."""
        try:
            current = {**self._stored, **self.pending.load()}
            before = current.get(route) or RouteState()
            after = before.copy()
            change(after)
            self.pending.add(route, after)
        except (OSError, StateFileError) as e:  # cannot even share it: 503, apply nothing
            why = (e.strerror or str(e)) if isinstance(e, OSError) else str(e)
            raise StateFileError(f"{reason}; and the other workers cannot be told ({why})") from e
        if self._not_persisted is None:
            log.error("the release state store refuses writes (%s): applied in memory", reason)
        self._not_persisted = reason
        current[route] = after
        self._pending = {**self._pending, route: after}
        return StateChange(
            route=route,
            before=before.copy(),
            after=after,
            routes=current,
            persisted=False,
            not_persisted=reason,
        )

    async def _retry_pending(self) -> None:
        """Store the changes the store refused, once it takes writes again."""
        if not self._pending and not await asyncio.to_thread(self.pending.changed):
            return
        async with self._lock:
            try:
                stored = await asyncio.to_thread(self.pending.flush, self.store)
            except (StateFileError, OSError):
                return  # still refused; ``store_up`` stays False
            if stored is not None:  # sync's store.changed() will not see our own write
                self._stored = dict(stored)
        if self._pending or self._not_persisted is not None:
            log.info("the release state store takes writes again: pending changes stored")
        self._pending, self._not_persisted = {}, None

    @property
    def store_up(self) -> bool:
        """False while a change lives only in memory (this worker's or another's)."""
        return not self._pending and self._not_persisted is None

    def store_status(self) -> dict[str, object]:
        """For ``/readyz``: is every change stored, and if not, which and why."""
        return {
            "backend": "file",
            "up": self.store_up,
            "pending": sorted(self._pending),
            "last_error": self._not_persisted,
        }

    async def kill(self, route: str, who: str) -> StateChange:
        """Send ``route`` to its primary until enabled again."""
        self._known(route)
        return await self._write(who, "rollback", route, lambda s: s.kill(True, at=self._wall()))

    async def kill_all(self, who: str) -> list[StateChange]:
        return [await self.kill(r, who) for r in sorted(self._routes)]

    async def enable(self, route: str, who: str) -> StateChange:
        """Undo a rollback: clear the kill switch and a tripped guard."""
        self._known(route)

        def change(s: RouteState) -> None:
            s.kill(False, at=self._wall())
            s.reset_guard(at=self._wall())

        result = await self._write(who, "enable", route, change)
        self.guards.reset(route)
        return result

    async def set_percent(self, route: str, ratio: float | None, who: str) -> StateChange:
        """Override the canary share (``None``: back to the config's)."""
        self._known(route)
        return await self._write(
            who, "set-percent", route, lambda s: s.set_percent(ratio, at=self._wall())
        )

    # -- reads ---------------------------------------------------------------------
    def verdicts(self) -> dict[str, GuardVerdict]:
        return self.guards.verdicts(self._clock())

    def events(self, n: int = 50) -> list[dict[str, object]]:
        if self.audit is None:
            return []
        with contextlib.suppress(OSError):
            return list(self.audit.tail(n))
        return []


class ReleaseCollector:
    """Scrape-time metrics of the release state: what each route does right now.

    ``strangler_route_canary_ratio{route}``: the configured canary share;
    ``strangler_route_new_ratio{route}``: the share the new side gets now (canary
    share, an operator's override, 1 for a migrated route; 0 while rolled back);
    ``strangler_route_killed{route}`` and ``strangler_guard_tripped{route}`` (0/1);
    ``strangler_error_budget_remaining_ratio{route}`` for routes with an SLO (this
    worker's window). Workers share the state file, so any worker's answer is right
    for the state; the error budget is the scraped worker's view.
    """

    def __init__(self, controls: ReleaseControls, holder: SnapshotHolder) -> None:
        self._controls = controls
        self._holder = holder

    def describe(self) -> list[Metric]:
        return list(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        def g(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=("route",))

        return (
            g("strangler_route_canary_ratio", "Configured share of the route for its canary."),
            g("strangler_route_new_ratio", "Share of the route the new side gets right now."),
            g("strangler_route_killed", "1 while an operator rolled the route back."),
            g("strangler_guard_tripped", "1 while the route's SLO guard has rolled it back."),
            g(
                "strangler_error_budget_remaining_ratio",
                "Share of the route's SLO error budget left in the window (1 = untouched).",
            ),
        )

    def collect(self) -> Iterator[Metric]:
        configured, new_ratio, killed, tripped, budget = self._families()
        verdicts = self._controls.verdicts()
        for route in self._holder.current.routes:
            name, plan = route.name, route.release
            state = self._controls.state.for_route(name)
            ratio = plan.canary.ratio if plan.canary is not None else 0.0
            configured.add_metric([name], ratio)
            new_ratio.add_metric([name], effective_new_ratio(route, state))
            killed.add_metric([name], 1.0 if state.killed else 0.0)
            tripped.add_metric([name], 1.0 if state.guard_tripped else 0.0)
            verdict = verdicts.get(name)
            if verdict is not None and verdict.budget_remaining is not None:
                budget.add_metric([name], verdict.budget_remaining)
        yield from (configured, new_ratio, killed, tripped, budget)


def effective_new_ratio(route: CompiledRoute, state: RouteState) -> float:
    """The share of ``route``'s requests its new side gets now (overrides aside)."""
    plan = route.release
    if plan.new is None or state.killed or state.guard_tripped:
        return 0.0
    if plan.canary is None:
        return 1.0 if plan.to == plan.new else 0.0
    return state.percent_override if state.percent_override is not None else plan.canary.ratio
