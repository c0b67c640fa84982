"""The autopilot's loop: one process at a time evaluates every route's ``migrate`` plan
and applies the share it decides through the release controls.

Every ``tick`` (a few times a second) each process tries the lease
(``Store.acquire``: a file in the state directory, or a Redis key with
``state.backend: redis``); only its holder evaluates. For each route with a plan
whose ``interval`` has passed it reads the window's figures
(``figures.window``, from the proxy's own counters: every worker's traffic; over
Redis, every process of every replica publishes its own reading and the evaluator
sums them, ``figures.combine``), runs
``machine.evaluate``, stores the new state and, when the share changes, writes it
with ``ReleaseControls.set_percent`` (audited as ``autopilot``), so every worker (and
every replica sharing the state) applies it within its state poll. The position's
share is also enforced on every evaluation: a lost write, or a state file restored
from backup, is corrected within one interval.

A process that takes the lease over has no window start of its own: it starts a new
window (waiting for traffic again), never guesses. A config reload that changes a
route's plan restarts that route's evaluation from where it is (``machine.reconcile``).
Operator actions (``act``) work from any process: they lock the state file, apply the
machine's action, store it and write the share at once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Final

from strangler.config.migrate_model import MigratedStage, MigratePlan
from strangler.config.model import Route
from strangler.metrics import Metrics
from strangler.migrate import machine
from strangler.migrate.figures import (
    Readings,
    combine,
    decode,
    encode,
    read_counters,
    window,
)
from strangler.migrate.machine import Figures, MigrationState, Outcome
from strangler.migrate.store import Store
from strangler.release.controls import ReleaseControls
from strangler.runtime import SnapshotHolder

__all__ = ["ACTIONS", "Autopilot", "RouteView"]

log = logging.getLogger("strangler.migrate")

ACTIONS: Final = ("pause", "resume", "approve", "abort", "retry", "skip")
_TICK: Final = 0.25  # seconds between lease checks; plans run at their own interval
RELEASE_WAIT: Final = 1.0  # seconds a stopping leader waits for the lock to give its lease up
_PUBLISH: Final = 1.0  # seconds between a process's readings published to the store
_READING_TTL: Final = 5.0  # seconds a published reading stays (a dead process drops out)
WHO: Final = "autopilot"


async def give_up_lease(store: Store, wait: float = RELEASE_WAIT) -> None:
    """Give the lease up, waiting at most ``wait`` seconds for the lock: workers stop
    together, and another may hold it for a read-modify-write. Past that, the lease is
    left to expire."""
    deadline = time.monotonic() + wait
    while not await asyncio.to_thread(store.release):
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.01)  # flock has no wait with a timeout: poll it


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteView:
    """What the admin API shows of one route's plan."""

    route: str
    plan: MigratePlan
    state: MigrationState
    gates: tuple[machine.GateResult, ...]
    figures: Figures | None

    def as_dict(self, now: float) -> dict[str, object]:
        s = self.state
        return {
            "route": self.route,
            "position": machine.position_name(self.plan, s),
            "status": s.status,
            "share": Autopilot.position_share(self.plan, s),
            "stages": [st.kind for st in self.plan.stages],
            "stage": s.stage,
            "step": s.step,
            "in_stage_seconds": max(0.0, now - s.entered),
            "eta_seconds": machine.eta(self.plan, s, now),
            "note": s.note,
            "gates": [g.as_dict() for g in self.gates],
            "figures": None if self.figures is None else self.figures.as_dict(),
            "on_breach": self.plan.on_breach,
            "approval": sorted(self.plan.approval),
            "history": [t.as_dict() for t in s.history],
        }


class Autopilot:
    def __init__(
        self,
        holder: SnapshotHolder,
        metrics: Metrics,
        release: ReleaseControls,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.holder = holder
        self.metrics = metrics
        self.release = release
        self.store = store
        self.clock = clock
        self._starts: dict[str, tuple[float, Readings]] = {}  # window starts, per replica
        self._published = 0.0  # when this process last published its reading
        self._plans: dict[str, MigratePlan] = {}  # the plan last evaluated, per route
        self._due: dict[str, float] = {}
        self._views: dict[str, RouteView] = {}
        self.leading = False

    def plans(self) -> dict[str, Route]:
        return {r.name: r for r in self.holder.current.config.routes if r.migrate is not None}

    async def run(self) -> None:
        """Evaluate until cancelled; gives the lease up when stopped."""
        try:
            while True:
                try:
                    await self.tick()
                except Exception:  # a bad tick must never end the autopilot
                    log.exception("autopilot evaluation failed; retrying")
                await asyncio.sleep(_TICK)
        finally:
            if self.leading:
                await give_up_lease(self.store)

    async def tick(self) -> None:
        routes = self.plans()
        if not routes:
            return
        now = self.clock()
        ttl = max(2.0, 3 * max(r.migrate.interval for r in routes.values() if r.migrate))
        leading = await asyncio.to_thread(self.store.acquire, now, ttl)
        if leading != self.leading:
            log.info("autopilot: %s the evaluation lease", "took" if leading else "lost")
            self._starts.clear()  # a new leader starts new windows
        self.leading = leading
        due = [r for r in routes.values() if now >= self._due.get(r.name, 0.0)] if leading else []
        if self.store.per_process and (due or now >= self._published + _PUBLISH):
            self._published = now
            await asyncio.to_thread(self._publish)
        if not due:
            return
        counters = await asyncio.to_thread(self._readings)
        # Under the state lock: decide, apply the shares, then store the states, so a
        # stored state never names a share that was not written.
        async with self.store.alocked():
            states = await asyncio.to_thread(self.store.load)
            for route in due:
                plan = route.migrate
                assert plan is not None
                self._due[route.name] = now + plan.interval
                result = self._evaluate(route, plan, states.get(route.name), counters, now)
                states[route.name] = result.state
                await self._apply(route, result)
            gates = {
                name: {
                    "at": now,
                    "gates": [g.as_dict() for g in v.gates],
                    "figures": None if v.figures is None else v.figures.as_dict(),
                }
                for name, v in self._views.items()
            }
            await asyncio.to_thread(self._save, states, gates)

    def _publish(self) -> None:
        """This process's own counters, for the evaluator on whichever replica leads."""
        self.store.publish_reading(encode(read_counters(self.metrics.registry)), _READING_TTL)

    def _readings(self) -> Readings:
        """Every process's counters: this host's multiprocess registry (every worker);
        over Redis, every replica's published reading (this process's just published)."""
        if not self.store.per_process:
            return {"": read_counters(self.metrics.exposition())}
        found: Readings = {}
        for owner, text in self.store.readings().items():
            reading = decode(text)
            if reading is not None:
                found[owner] = reading
        return found

    def _save(self, states: dict[str, MigrationState], gates: Mapping[str, object]) -> None:
        self.store.save(states)
        self.store.save_gates(gates)

    def _evaluate(
        self,
        route: Route,
        plan: MigratePlan,
        state: MigrationState | None,
        counters: Readings,
        now: float,
    ) -> Outcome:
        if state is None:
            started = machine.start(plan, now)
            self._starts[route.name] = (started.state.entered, dict(counters))
            self._plans[route.name] = plan
            self._view(route, plan, started.state, (), None)
            return started
        previous = self._plans.get(route.name)
        if previous is not None and previous != plan:
            moved = machine.reconcile(previous, plan, state, now)
            self._plans[route.name] = plan
            self._starts[route.name] = (moved.state.entered, dict(counters))
            self._view(route, plan, moved.state, (), None)
            return moved
        self._plans[route.name] = plan
        start = self._starts.get(route.name)
        if start is None or start[0] != state.entered:
            # No reading at this window's start (a new leader, an operator's action):
            # the window starts now.
            state = replace(state, entered=now, passing_since=None)
            self._starts[route.name] = (now, dict(counters))
            self._view(route, plan, state, (), None)
            return machine.Outcome(state=state, share=self.position_share(plan, state))
        new, primary = route.new_side, route.primary
        before, after = combine(start[1], counters)
        figures = window(before, after, route.name, new=new or "", primary=primary)
        if figures is None:  # counters went down: the process group restarted
            state = replace(state, entered=now, passing_since=None)
            self._starts[route.name] = (now, dict(counters))
            return machine.Outcome(state=state)
        figures = replace(figures, budget_left=self._budget(route.name))
        result = machine.evaluate(plan, state, figures, now)
        if result.state.entered != state.entered:
            self._starts[route.name] = (result.state.entered, dict(counters))
        share = result.share
        if share is None:
            share = self.position_share(plan, result.state)  # enforce: heals drift
        gates, shown = result.gates, figures
        moved_on = result.state.entered != state.entered and result.state.status == "running"
        if moved_on and all(g.verdict != "fail" for g in gates):
            # A new window has just begun: show its own gates, waiting for its traffic, not
            # the last window's that let the plan move on (the transition keeps those).
            shown = Figures()
            gates = machine.judge(plan, result.state, shown)
        self._view(route, plan, result.state, gates, shown)
        return replace(result, share=share)

    def _budget(self, route: str) -> float | None:
        verdict = self.release.verdicts().get(route)
        return None if verdict is None else verdict.budget_remaining

    @staticmethod
    def position_share(plan: MigratePlan, state: MigrationState) -> float:
        """The share a plan holds its route at in ``state``."""
        if state.status == "aborted" or state.entry_pending:
            return 0.0
        if state.status == "done":
            return machine.share_of(plan, len(plan.stages), 0)
        return machine.share_of(plan, state.stage, state.step)

    def _view(
        self,
        route: Route,
        plan: MigratePlan,
        state: MigrationState,
        gates: tuple[machine.GateResult, ...],
        figures: Figures | None,
    ) -> None:
        self._views[route.name] = RouteView(
            route=route.name, plan=plan, state=state, gates=gates, figures=figures
        )

    async def _apply(self, route: Route, out: Outcome, who: str = WHO) -> None:
        if out.transition is not None:
            t = out.transition
            log.info(
                "autopilot %s: %s -> %s (%s) by %s", route.name, t.from_, t.to, t.reason, t.actor
            )
            self.metrics.migration_transitions.labels(
                route.name, t.from_, t.to, _reason_kind(t.reason)
            ).inc()
        if out.share is None:
            return
        current = self.release.state.for_route(route.name).percent_override
        if current is not None and abs(current - out.share) < 1e-9:
            return
        try:
            await self.release.set_percent(route.name, out.share, who)
        except OSError as e:  # the state disk: the next evaluation tries again
            log.error("autopilot %s: could not write the share: %s", route.name, e)

    # -- reads and operator actions ------------------------------------------------

    def views(self) -> dict[str, dict[str, object]]:
        """Every planned route's state as stored (the same from every process), with the
        gate figures of the last evaluation when this process made it."""
        now = self.clock()
        states = self.store.load()
        last = self.store.load_gates()
        out: dict[str, dict[str, object]] = {}
        for name, route in self.plans().items():
            plan = route.migrate
            assert plan is not None
            state = states.get(name)
            if state is None:
                out[name] = {"route": name, "position": "not started", "status": "waiting"}
                continue
            view = RouteView(route=name, plan=plan, state=state, gates=(), figures=None)
            shown = view.as_dict(now)
            evaluated = last.get(name)
            if isinstance(evaluated, dict):
                shown["gates"] = evaluated.get("gates") or []
                shown["figures"] = evaluated.get("figures")
                shown["evaluated_at"] = evaluated.get("at")
            out[name] = shown
        return out

    def decommission_evidence(self) -> dict[str, str]:
        """Routes whose plan is done: held migrated with every gate passing and no
        fallback for the plan's hold, so legacy's endpoint can go (blocking: reads the
        state file)."""
        states = self.store.load()
        out: dict[str, str] = {}
        for name, route in self.plans().items():
            plan, state = route.migrate, states.get(name)
            if plan is None or state is None or state.status != "done":
                continue
            last = plan.stages[-1]
            if not isinstance(last, MigratedStage):
                continue  # a plan that stops short of 100%: legacy still answers
            done_at = state.history[-1].at if state.history else state.entered
            hold = last.hold
            out[name] = (
                f"autopilot: migrated held {hold:g}s with every gate passing and no "
                f"fallback to legacy; done at {_utc(done_at)}"
            )
        return out

    async def act(
        self, route: str, action: str, actor: str, reason: str, stage: str | None = None
    ) -> Outcome:
        """An operator's action on one route's plan; raises ``KeyError`` (no plan) or
        ``machine.ActionError`` (does not apply now)."""
        spec = self.plans().get(route)
        if spec is None or spec.migrate is None:
            raise KeyError(route)
        plan = spec.migrate
        now = self.clock()

        async with self.store.alocked():
            states = await asyncio.to_thread(self.store.load)
            state = states.get(route) or machine.start(plan, now).state
            result: Outcome
            if action == "retry":
                result = machine.retry(plan, state, now, actor, reason, stage)
            else:
                result = _OPERATOR[action](plan, state, now, actor, reason)
            await self._apply(spec, result, who=actor)
            states[route] = result.state
            await asyncio.to_thread(self.store.save, states)
        self._starts.pop(route, None)  # the next evaluation starts a fresh window
        await asyncio.to_thread(self._audit, route, action, actor, reason, plan, state, result)
        return result

    def _audit(
        self,
        route: str,
        action: str,
        actor: str,
        reason: str,
        plan: MigratePlan,
        before: MigrationState,
        result: Outcome,
    ) -> None:
        """The operator's action in the audit log beside the share it wrote (if any):
        ``migrate-pause`` etc., with the position and status before and after."""
        audit = self.release.audit
        if audit is None:
            return
        after = result.state
        try:
            audit.append(
                actor,
                f"migrate-{action}",
                route,
                {"position": machine.position_name(plan, before), "status": before.status},
                {"position": machine.position_name(plan, after), "status": after.status},
                reason=reason or None,
            )
        except OSError as e:  # a full state disk: the action itself stands
            log.error("cannot append migrate-%s of %r to the audit log: %s", action, route, e)


_OPERATOR: Final[dict[str, Callable[..., Outcome]]] = {
    "pause": machine.pause,
    "resume": machine.resume,
    "approve": machine.approve,
    "abort": machine.abort,
    "skip": machine.skip,
}


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _reason_kind(reason: str) -> str:
    """A bounded label for a transition's reason."""
    head = re.split(r"[:;]", reason, maxsplit=1)[0].strip()
    return head if head in {
        "breach", "gates passed", "approved", "skipped", "aborted", "retry", "paused", "resumed",
    } else "other"  # fmt: skip
