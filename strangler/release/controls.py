"""Release controls at run time: the state, the store behind it, the guards and the audit.

One ``ReleaseControls`` per worker, owned by the server. It is what the admin API
writes through and what the request path reads:

- ``state``: per route kill switch, percent override, guard trip; read per request.
- writes (``kill``, ``enable``, ``set_percent``) go through the store (an atomic,
  locked read-modify-write of the state file, in a thread), then update this
  worker's ``state`` and append to the audit log;
- ``run()`` polls the store every ``file_poll`` seconds, so a write made by another
  worker (or another replica sharing the file) takes effect here within a poll; and
  evaluates the SLO guards every second, tripping a route that breached its SLO.
- a write the file system refuses (disk full, read-only: ``StateNotPersisted``) still
  takes effect at once, in memory, on every worker (``pending``), and is answered with
  ``persisted=False``; a canary group's write is pending for all its routes or none,
  and is stored in one write too. Each poll retries storing it until the disk takes
  it. Meanwhile
  ``store_up`` is False (``strangler_state_store_up``, ``/readyz``).

A tripped guard stays tripped until a person enables the route again: once rolled
back, the new side gets no traffic and could never prove itself healthy.

**A canary group moves as one.** Routes with the same ``canary.group`` share
cohorts: a user is on the new side for every route of the group or for none. So
every write on one of its routes (``kill``, ``enable``, ``set_percent``) and a guard
trip on any of them apply to the whole group, in **one** store write
(``StateStore.update_routes``: all routes or none, for every worker and replica
reading the store) and one synchronous update of this worker's state: no request
ever sees half a group rolled back. The audit log says so (``group``, ``routes``).
An operator detaches one route on purpose with ``scope(route, only_route=True)``
(``--only-route``), audited as ``detached``.

>>> import asyncio
>>> from strangler.release.state import MemoryStateStore
>>> controls = ReleaseControls(MemoryStateStore(), None)
>>> controls.start({"read": None, "create": None, "other": None},
...                {"read": "orders", "create": "orders"})
>>> write = asyncio.run(controls.kill("create", "admin@127.0.0.1"))
>>> write.scope.group, [c.route for c in write.changes]
('orders', ['read', 'create'])
>>> controls.state.for_route("read").killed, controls.state.for_route("other").killed
(True, False)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, final

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from strangler.config.model import Route, Slo
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


class UnknownGroup(LookupError):
    """A write named a canary group the loaded config does not have."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """The routes one write changes, and why those (``ReleaseControls.scope``).

    ``group``: the canary group moving as one (``routes`` is all of it);
    ``detached``: an ``--only-route`` write on a route of that group (``routes`` is
    that route alone); ``every``: every route of the loaded config.
    """

    routes: tuple[str, ...]
    group: str | None = None
    detached: str | None = None
    every: bool = False


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseWrite:
    """What one write did: the action, who asked and why, the scope, one
    ``StateChange`` per route of the scope (in the scope's order)."""

    action: str
    who: str
    reason: str | None
    scope: Scope
    changes: tuple[StateChange, ...]

    @property
    def changed(self) -> bool:
        return any(c.changed for c in self.changes)

    @property
    def persisted(self) -> bool:
        """False: the store refused the write; it holds in memory, on every worker,
        for every route of the scope, and is stored once the store takes writes."""
        return all(c.persisted for c in self.changes)

    @property
    def not_persisted(self) -> str | None:
        """Why the store refused the write (``None``: it did not)."""
        return next((c.not_persisted for c in self.changes if c.not_persisted), None)


def canary_groups(routes: Iterable[Route]) -> dict[str, str]:
    """Route name → its ``canary.group``, for the routes that have one."""
    return {r.name: r.canary.group for r in routes if r.canary is not None and r.canary.group}


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
        windows: Path | None = None,
    ) -> None:
        """``windows``: with ``--workers N``, the directory the workers share the SLO
        guards' windows in (``guard.Guards``); ``None``: this process's memory."""
        self.store = store
        self.audit = audit
        self.pending = pending or PendingChanges(None)
        self._stored: dict[str, RouteState] = {}  # what the store held, last we knew
        self._pending: dict[str, RouteState] = {}  # changes not stored (any worker's)
        self._not_persisted: str | None = None  # why this worker's last write was not
        self.state = RuntimeState()
        self.guards = Guards(clock, windows)
        self.file_poll = file_poll
        self._clock = clock
        self._wall = wall
        self._routes: frozenset[str] = frozenset()
        self._groups: dict[str, tuple[str, ...]] = {}
        self._group_of: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._on_change: list[Callable[[Iterable[str]], None]] = []
        self._lock = asyncio.Lock()
        self._store_failing = False

    # -- lifecycle -----------------------------------------------------------------
    def start(
        self, routes: Mapping[str, Slo | None], groups: Mapping[str, str] | None = None
    ) -> None:
        """Load what the store holds (raises ``StateFileError``: a kill switch that
        cannot be read must stop the start, not be silently forgotten)."""
        self._stored = self.store.load()
        pending = self.pending.load()  # a restarted worker keeps the others' pending
        self._pending = pending
        self.state.apply({**self._stored, **pending})
        self.reconcile(routes, groups)

    def reconcile(
        self, routes: Mapping[str, Slo | None], groups: Mapping[str, str] | None = None
    ) -> None:
        """After a (re)load: the routes of the new config, and their SLOs.
        ``groups``: route name → its canary group (``canary_groups(config.routes)``)."""
        self._routes = frozenset(routes)
        members: dict[str, list[str]] = {}
        for name in routes:  # config order
            group = (groups or {}).get(name)
            if group is not None:
                members.setdefault(group, []).append(name)
        self._groups = {g: tuple(names) for g, names in members.items()}
        self._group_of = {n: (g, names) for g, names in self._groups.items() for n in names}
        self.state.reconcile(routes)
        self.guards.reconcile(routes)
        self._warn_split_groups()
        self._changed(routes)

    def _warn_split_groups(self) -> None:
        """A reload can put a route into a group whose routes are rolled back (or an
        operator split one with ``only_route``): say so, the group no longer holds."""
        for group, names in self._groups.items():
            states = {n: self.state.for_route(n) for n in names}
            first = states[names[0]]
            if any(
                (s.killed, s.guard_tripped, s.percent_override)
                != (first.killed, first.guard_tripped, first.percent_override)
                for s in states.values()
            ):
                log.warning(
                    "canary group %r is split: its routes differ in release state (%s); "
                    "its users may be answered by both sides until the group is rolled "
                    "back or enabled as one",
                    group,
                    ", ".join(f"{n}: {_state_word(s)}" for n, s in states.items()),
                )

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Canary group → its routes, in config order."""
        return dict(self._groups)

    def group_of(self, route: str) -> str | None:
        found = self._group_of.get(route)
        return None if found is None else found[0]

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
        tripped = {n for n in self._routes if self.state.for_route(n).guard_tripped}
        changed = self.state.apply({**self._stored, **self._pending})
        for name in changed:  # enabled elsewhere: that window's answers are forgiven here too
            if name in tripped and not self.state.for_route(name).guard_tripped:
                self.guards.reset(name)
        if changed:
            log.info("release state changed elsewhere for %s", ", ".join(changed))
            self._changed(changed)
        return changed

    async def check_guards(self) -> None:
        trips = self.guards.check(
            self.state, now=self._clock(), wall=self._wall(), groups=self._group_of
        )
        for trip in trips:
            if trip.group is None:
                log.error("SLO guard tripped on route %r: %s; rolled back", trip.route, trip.reason)
            else:
                log.error(
                    "SLO guard tripped on route %r: %s; rolled back group %r: %s",
                    trip.route,
                    trip.verdict.reason or "SLO breached",
                    trip.group,
                    ", ".join(trip.routes),
                )
            scope = Scope(routes=trip.routes or (trip.route,), group=trip.group)
            await self._write("guard", "guard-trip", scope, self._tripper(trip.reason), trip.reason)

    def _tripper(self, reason: str) -> Callable[[RouteState], None]:
        def change(s: RouteState) -> None:
            if not s.guard_tripped:  # another worker may have tripped it first
                s.trip(reason, at=self._wall())

        return change

    # -- writes --------------------------------------------------------------------
    def scope(
        self, route: str | None = None, *, group: str | None = None, only_route: bool = False
    ) -> Scope:
        """The routes a write on ``route`` changes: its whole canary group, unless
        ``only_route`` detaches it; ``group``: that group; neither: every route.
        Raises ``UnknownRoute`` / ``UnknownGroup``."""
        if route is not None:
            if route not in self._routes:
                raise UnknownRoute(route)
            found = self._group_of.get(route)
            if found is None:
                return Scope(routes=(route,))
            if only_route:
                return Scope(routes=(route,), detached=found[0])
            return Scope(routes=found[1], group=found[0])
        if group is not None:
            members = self._groups.get(group)
            if members is None:
                raise UnknownGroup(group)
            return Scope(routes=members, group=group)
        return Scope(routes=tuple(sorted(self._routes)), every=True)

    def _scope(self, target: str | Scope) -> Scope:
        return self.scope(target) if isinstance(target, str) else target

    async def _write(
        self,
        who: str,
        action: str,
        scope: Scope,
        change: Callable[[RouteState], None],
        reason: str | None = None,
    ) -> ReleaseWrite:
        """One atomic store write for every route of ``scope`` (all or none), then
        this worker's state in one synchronous step, then one audit line per route
        that changed."""
        async with self._lock:
            try:
                try:
                    await asyncio.to_thread(self.pending.flush, self.store)  # older ones first
                except OSError as e:  # the shared runtime dir itself is unusable
                    log.error("cannot read the pending release changes: %s", e)
                results = await asyncio.to_thread(self.store.update_routes, scope.routes, change)
            except StateNotPersisted as e:  # the disk refuses: apply it anyway, store later
                results = await asyncio.to_thread(self._keep_pending, scope.routes, change, str(e))
            else:
                if results:
                    self._stored = dict(results[0].routes)
                self._pending, self._not_persisted = {}, None
            changed = self.state.apply(results[0].routes) if results else []
            done = [r for r in results if r.changed]
            if done and self.audit is not None:
                try:
                    await asyncio.to_thread(self._audit, who, action, scope, reason, done)
                except OSError as e:  # the same full disk: the change itself stands
                    log.error(
                        "cannot append %s of %s to the audit log: %s",
                        action,
                        ", ".join(map(repr, scope.routes)),
                        e,
                    )
            self._changed(changed)
            return ReleaseWrite(
                action=action, who=who, reason=reason, scope=scope, changes=tuple(results)
            )

    def _audit(
        self, who: str, action: str, scope: Scope, reason: str | None, done: list[StateChange]
    ) -> None:
        assert self.audit is not None
        for result in done:
            self.audit.append(
                who,
                action,
                result.route,
                result.before.to_dict(),
                result.after.to_dict(),
                reason=reason,
                group=scope.group,
                routes=list(scope.routes) if scope.group is not None else None,
                detached=scope.detached,
            )

    def _keep_pending(
        self, routes: Sequence[str], change: Callable[[RouteState], None], reason: str
    ) -> list[StateChange]:
        """The change, applied to every route of ``routes`` on top of what is stored
        and pending, recorded as pending for every worker in one step (a canary group:
        all its routes or none). Blocking (thread)."""
        try:
            current = {**self._stored, **self.pending.load()}
            steps: list[tuple[str, RouteState, RouteState]] = []
            for name in dict.fromkeys(routes):
                before = current.get(name) or RouteState()
                after = before.copy()
                change(after)
                steps.append((name, before, after))
            self.pending.add_routes({name: after for name, _, after in steps})
        except (OSError, StateFileError) as e:  # cannot even share it: 503, apply nothing
            why = (e.strerror or str(e)) if isinstance(e, OSError) else str(e)
            raise StateFileError(f"{reason}; and the other workers cannot be told ({why})") from e
        if self._not_persisted is None:
            log.error("the release state store refuses writes (%s): applied in memory", reason)
        self._not_persisted = reason
        wanted = {name: after for name, _, after in steps}
        current.update(wanted)
        self._pending = {**self._pending, **wanted}
        return [
            StateChange(
                route=name,
                before=before.copy(),
                after=after,
                routes=current,
                persisted=False,
                not_persisted=reason,
            )
            for name, before, after in steps
        ]

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

    async def kill(
        self, target: str | Scope, who: str, *, reason: str | None = None
    ) -> ReleaseWrite:
        """Send ``target``'s routes to their primary until enabled again (a route
        name: its whole canary group)."""

        def change(s: RouteState) -> None:
            if not s.killed:  # a repeated rollback changes nothing (and is not audited)
                s.kill(True, at=self._wall())

        return await self._write(who, "rollback", self._scope(target), change, reason)

    async def kill_all(self, who: str, *, reason: str | None = None) -> ReleaseWrite:
        return await self.kill(self.scope(), who, reason=reason)

    async def enable(
        self, target: str | Scope, who: str, *, reason: str | None = None
    ) -> ReleaseWrite:
        """Undo a rollback: clear the kill switch and a tripped guard."""
        scope = self._scope(target)

        def change(s: RouteState) -> None:
            if s.killed:
                s.kill(False, at=self._wall())
            if s.guard_tripped:
                s.reset_guard(at=self._wall())

        result = await self._write(who, "enable", scope, change, reason)
        for route in scope.routes:
            self.guards.reset(route)
        return result

    async def enable_all(self, who: str, *, reason: str | None = None) -> ReleaseWrite:
        return await self.enable(self.scope(), who, reason=reason)

    async def set_percent(
        self, target: str | Scope, ratio: float | None, who: str, *, reason: str | None = None
    ) -> ReleaseWrite:
        """Override the canary share (``None``: back to the config's). A group shares
        one cohort, so a route name sets its whole group."""

        def change(s: RouteState) -> None:
            if s.percent_override != ratio:
                s.set_percent(ratio, at=self._wall())

        return await self._write(who, "set-percent", self._scope(target), change, reason)

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


def _state_word(state: RouteState) -> str:
    if state.killed:
        return "rolled back"
    if state.guard_tripped:
        return "guard tripped"
    if state.percent_override is not None:
        return f"{state.percent_override * 100:g}% (runtime)"
    return "as the file says"


def effective_new_ratio(route: CompiledRoute, state: RouteState) -> float:
    """The share of ``route``'s requests its new side gets now (overrides aside)."""
    plan = route.release
    if plan.new is None or state.killed or state.guard_tripped:
        return 0.0
    if plan.canary is not None and state.percent_override is not None:
        return state.percent_override
    return file_new_ratio(route)


def file_new_ratio(route: CompiledRoute) -> float:
    """The share of ``route``'s requests its config file gives the new side."""
    plan = route.release
    if plan.new is None:
        return 0.0
    if plan.canary is None:
        return 1.0 if plan.to == plan.new else 0.0
    return plan.canary.ratio
