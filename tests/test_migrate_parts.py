"""The autopilot's parts below the machine: the ``migrate:`` config with its problems,
figures from real Prometheus counters, and the state store's lock and lease."""

from __future__ import annotations

import asyncio
import doctest
import math
import multiprocessing
import os
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from prometheus_client import CollectorRegistry

import strangler.migrate.figures
from strangler.config import load_config_text
from strangler.config.described import _plain, read_part, routes_schema
from strangler.config.migrate_model import CanaryStage, MigratedStage, MigratePlan, ShadowStage
from strangler.config.source import read_text
from strangler.config.walker import Walker
from strangler.errors import ConfigError
from strangler.metrics import Metrics
from strangler.migrate.figures import quantile, read_counters, window
from strangler.migrate.machine import MigrationState
from strangler.migrate.runner import give_up_lease
from strangler.migrate.store import MigrateStore

# the keys a route needs, for a plan alone against the route file schema
A_ROUTE = {"name": "a", "owner": "t", "match": {"path": "/"}, "to": "legacy"}
ROUTE = """upstreams: {{legacy: "http://127.0.0.1:1", orders: "http://127.0.0.1:2"}}
routes:
  - name: orders-read
    owner: team-orders
    match: {{path: "/orders/{{id:int}}"}}
    to: legacy
    canary: {{to: orders, percent: 0%, sticky: "header:X-User-Id"}}
    shadow: {{to: orders, percent: 20%}}
    migrate:
{plan}
"""


def problems(plan: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(ROUTE.format(plan=plan), "m.yaml")
    return [str(p) for p in info.value.problems]


def test_a_full_plan_loads() -> None:
    config = load_config_text(
        ROUTE.format(
            plan="""      stages:
        - shadow: {min_compared: 1000, parity: 99.9%, for: 30m}
        - canary: {percent: [1%, 5%, 25%, 50%], step_every: 15m, min_requests: 500}
        - migrated: {hold: 24h}
      gates: {error_rate_vs_primary: +0.5%, p99_vs_primary: 1.2x, min_primary: 200}
      on_breach: pause
      approval: [migrated]
      interval: 5s"""
        ),
        "m.yaml",
    )
    (route,) = config.routes
    plan = route.migrate
    assert plan is not None
    shadow = plan.stages[0]
    assert isinstance(shadow, ShadowStage)
    assert shadow.parity == pytest.approx(0.999)
    assert plan.stages == (
        replace(shadow, min_compared=1000, hold=1800.0),
        CanaryStage(steps=(0.01, 0.05, 0.25, 0.5), step_every=900.0, min_requests=500),
        MigratedStage(hold=86400.0),
    )
    assert (plan.gates.error_rate_vs_primary, plan.gates.p99_vs_primary) == (0.005, 1.2)
    assert (plan.on_breach, plan.approval, plan.interval) == ("pause", frozenset({"migrated"}), 5.0)
    assert plan.at.line == 10


def test_a_bare_stage_name_and_defaults() -> None:
    config = load_config_text(ROUTE.format(plan="      stages: [migrated]"), "m.yaml")
    plan = config.routes[0].migrate
    assert plan is not None
    assert plan.stages == (MigratedStage(),)


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        (
            "      stages: []",
            "m.yaml:10: route 'orders-read' migrate.stages must be a non-empty list, got an empty "
            "list (hint: like stages: [{canary: {percent: [5%, 25%, 50%], step_every: 15m}}, "
            "migrated])",
        ),
        (
            "      stages: [migrated, {canary: {percent: [5%]}}]",
            "m.yaml:10: route 'orders-read' migrate.stages[1] canary comes too late "
            "(hint: stages go shadow, canary, migrated)",
        ),
        (
            "      stages: [{canary: {percent: [5%, 5%]}}]",
            "m.yaml:10: route 'orders-read' migrate.stages entry.canary.percent must grow step by "
            "step (hint: sticky cohorts only ever grow)",
        ),
        (
            "      stages: [{canary: {percent: [100%]}}]",
            "m.yaml:10: route 'orders-read' migrate.stages entry.canary.percent: 100.0000% is not "
            "a canary share (hint: each share is above 0% and below 100%; the migrated stage is "
            "100%)",
        ),
        (
            "      stages: [{canary: {step_every: 1m}}]",
            "m.yaml:10: route 'orders-read' migrate.stages entry.canary is missing required key "
            "'percent' (hint: for example canary: {percent: [1%, 5%, 25%, 50%], step_every: 15m})",
        ),
        (
            "      stages: [{canary: {percent: [5%], step_evry: 1m}}]",
            "m.yaml:10: unknown key 'step_evry' in route 'orders-read' migrate.stages entry.canary "
            "(hint: did you mean 'step_every'?)",
        ),
        (
            "      stages: [migrated]\n      gates: {p99_vs_primary: 0.9x}",
            "m.yaml:11: route 'orders-read' migrate.gates.p99_vs_primary: expected a factor of at "
            "least 1, like 1.2x, got '0.9x' (hint: the new side's p99 may be at most this many "
            "times the primary's)",
        ),
        (
            "      stages: [migrated]\n      gates: {error_budget_left: 50%}",
            "m.yaml:11: route 'orders-read' migrate.gates.error_budget_left needs the route's slo "
            "(the budget is its error_rate) (hint: add slo: {error_rate: 1%, window: 5m})",
        ),
        (
            "      stages: [migrated]\n      approval: [canary]",
            "m.yaml:11: route 'orders-read' migrate.approval: 'canary' is not a stage of this "
            "plan (hint: this plan's stages: migrated)",
        ),
        (
            "      stages: [migrated]\n      on_breach: panic",
            "m.yaml:11: route 'orders-read' migrate.on_breach must be one of rollback, pause, "
            "got 'panic'",
        ),
    ],
)
def test_problems_name_the_line_and_give_a_hint(plan: str, expected: str) -> None:
    assert problems(plan) == [expected]


def test_a_plan_needs_the_routes_canary_and_a_shadow_stage_its_shadow() -> None:
    text = """upstreams: {legacy: "http://127.0.0.1:1"}
routes:
  - name: a
    owner: t
    match: {path: /a}
    to: legacy
    migrate: {stages: [shadow, migrated]}
"""
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "m.yaml")
    assert [str(p) for p in info.value.problems] == [
        "m.yaml:7: route 'a' migrate needs the route's canary: the plan moves the canary's "
        "share (hint: add canary: {to: NEW, percent: 0%, sticky: header:X-User-Id})",
        "m.yaml:7: route 'a' migrate.stages[0] shadow needs the route's shadow: it waits for "
        "shadow parity (hint: add shadow: {to: NEW, percent: 20%}, or drop this stage)",
    ]


def test_one_plan_per_canary_group() -> None:
    route = """  - name: {name}
    owner: t
    match: {{path: /{name}}}
    to: legacy
    canary: {{to: orders, percent: 0%, sticky: "header:X-User-Id", group: checkout}}
    migrate: {{stages: [migrated]}}
"""
    text = 'upstreams: {legacy: "http://127.0.0.1:1", orders: "http://127.0.0.1:2"}\nroutes:\n'
    text += route.format(name="a") + route.format(name="b")
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "m.yaml")
    assert [str(p) for p in info.value.problems] == [
        "m.yaml:14: route 'b' migrate: route 'a' already carries the plan of canary group "
        "'checkout' (hint: a group moves as one unit: give the plan to one route of the group)"
    ]


# ---------------------------------------------------------------------------- figures


def test_figures_are_the_difference_of_two_readings_of_the_real_metrics() -> None:
    metrics = Metrics(CollectorRegistry())
    new = metrics.bind_route("orders-read", "orders", "new")
    old = metrics.bind_route("orders-read", "legacy", "legacy")
    new.record(200, 0.004, 10, False)
    start = read_counters(metrics.registry)
    for i in range(100):
        new.record(500 if i < 3 else 200, 0.020, 10, False)
        old.record(200, 0.002, 10, False)
    metrics.fallbacks.labels("orders-read", "5xx").inc(2)
    w = window(
        start, read_counters(metrics.registry), "orders-read", new="orders", primary="legacy"
    )
    assert w is not None
    assert (w.new_requests, w.new_errors, w.primary_requests, w.fallbacks) == (102, 5, 98, 2)
    assert w.new_p99 is not None
    assert 0.01 < w.new_p99 <= 0.025
    assert w.primary_p99 is not None
    assert w.primary_p99 <= 0.0025


def test_a_counter_that_went_down_makes_the_window_invalid() -> None:
    before = Metrics(CollectorRegistry())
    before.bind_route("r", "orders", "new").record(200, 0.01, 1, False)
    after = Metrics(CollectorRegistry())  # the process group restarted: counters from 0
    start = read_counters(before.registry)
    assert (
        window(start, read_counters(after.registry), "r", new="orders", primary="legacy")
        is not None
    )
    after_one = Metrics(CollectorRegistry())
    after_one.bind_route("r", "legacy", "legacy").record(200, 0.01, 1, False)
    fresh = read_counters(after_one.registry)
    fresh["r"].answers[("orders", "2xx")] = 0.0
    assert window(start, fresh, "r", new="orders", primary="legacy") is None


def test_quantile_edges() -> None:
    assert quantile(0.99, {}) is None
    assert quantile(0.99, {0.1: 0.0, math.inf: 10.0}) == 0.1  # all beyond the last bound
    assert quantile(0.5, {0.1: 10.0, math.inf: 10.0}) == pytest.approx(0.05)


def test_figures_doctests() -> None:
    assert doctest.testmod(strangler.migrate.figures).failed == 0


# ---------------------------------------------------------------------------- store


def test_states_round_trip_and_a_corrupt_file_reads_as_none(tmp_path: Path) -> None:
    store = MigrateStore(tmp_path)
    state = MigrationState(stage=1, step=2, entered=5.0, note="x")
    with store.locked():
        store.save({"a": state})
    assert store.load() == {"a": state}
    (tmp_path / "migrate.json").write_text('{"a": {"stage": "one"}, "b": 7}')
    assert store.load() == {}


def _take(directory: str, now: float, ttl: float, out: multiprocessing.Queue[bool]) -> None:
    out.put(MigrateStore(Path(directory)).acquire(now, ttl))


def test_one_process_holds_the_lease_until_it_expires_or_is_given_up(tmp_path: Path) -> None:
    """The lease-loss trap: a second process never evaluates while the lease is held,
    takes over once it expired, and at once when the holder gave it up."""
    ctx = multiprocessing.get_context("fork")
    here = MigrateStore(tmp_path)

    def other(now: float) -> bool:
        q: multiprocessing.Queue[bool] = ctx.Queue()
        p = ctx.Process(target=_take, args=(str(tmp_path), now, 10.0, q))
        p.start()
        p.join(10)
        return q.get(timeout=5)

    assert here.acquire(100.0, 10.0)
    assert here.leader(105.0) == here.owner
    assert other(105.0) is False  # held
    assert here.acquire(106.0, 10.0)  # the holder renews
    assert other(115.0) is False
    assert other(117.0) is True  # expired: taken over
    assert here.acquire(118.0, 10.0) is False  # and the old holder is refused
    assert here.leader(118.0) != here.owner
    here.release()  # not the holder: nothing happens
    assert here.leader(118.0) is not None


async def test_a_stopping_leader_waits_briefly_for_the_lock_to_give_its_lease_up(
    tmp_path: Path,
) -> None:
    """Workers stop together: one may hold the lock (a read-modify-write) when the
    leader gives its lease up; the leader waits for it (bounded), or the next process
    would wait out the lease."""
    store = MigrateStore(tmp_path)
    lease = tmp_path / "migrate.lease"
    assert store.acquire(100.0, 10.0)
    holder = store._lock()  # another worker's
    assert store.release() is False  # held: nothing done, never blocks
    asyncio.get_running_loop().call_later(0.1, os.close, holder)  # held 0.1 s: the case
    await give_up_lease(store)
    assert not lease.exists()
    assert store.acquire(200.0, 10.0)
    holder = store._lock()  # held past the wait: the lease is left to expire
    try:
        await give_up_lease(store, wait=0.05)
        assert lease.exists()
    finally:
        os.close(holder)


async def test_a_lock_wait_cancelled_while_another_holds_it_leaks_nothing(tmp_path: Path) -> None:
    """A stop during an evaluation cancels the wait for the state lock; the lock the
    thread then gets must be given back, or the process would wait for itself."""
    store = MigrateStore(tmp_path)
    holder = store._lock()  # another open file description: like another process
    entered = asyncio.Event()

    async def evaluate() -> None:
        async with store.alocked():
            entered.set()

    waiting = asyncio.ensure_future(evaluate())
    await asyncio.sleep(0)  # the wait for the lock has begun (in its thread)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    os.close(holder)  # the other holder lets go: the cancelled wait gets it, then closes it
    assert not entered.is_set()
    fd = await asyncio.wait_for(asyncio.to_thread(store._lock), 5)  # no lock left behind
    os.close(fd)
    store.release()  # never blocks, held or not
    held = store._lock()
    try:
        await asyncio.wait_for(asyncio.to_thread(store.release), 5)
    finally:
        os.close(held)


@pytest.mark.parametrize(
    "plan",
    [
        "{stages: []}",
        "{stages: [migratd]}",
        "{stages: [{canary: {percent: [5%], step_evry: 1m}}]}",
        "{stages: [{canary: {step_every: 1m}}]}",
        "{stages: [migrated], on_breach: panic}",
        "{stages: [migrated], interval: soon}",
        "{stages: [migrated, {shadow: 1}]}",
        "{stages: [canary]}",
        "{stages: [{canary: null}]}",
        "{stages: [{canry: {percent: 5%}}]}",
    ],
)
def test_the_route_file_schema_describes_the_plan(plan: str) -> None:
    """What the model says of a plan, the schema says too (cross-checks are check's)."""
    validator = jsonschema.Draft202012Validator(routes_schema())
    root = read_text(f"migrate: {plan}\n", "m.yaml").files[0].root
    assert root is not None
    assert list(validator.iter_errors({"routes": [{**A_ROUTE, **_plain(root)}]}))
    node = root.get("migrate")  # type: ignore[union-attr]
    assert node is not None
    w = Walker("m.yaml")
    assert read_part(w, node, MigratePlan, "route 'a' migrate") is None
    assert w.problems


def test_the_route_file_schema_takes_a_full_plan() -> None:
    validator = jsonschema.Draft202012Validator(routes_schema())
    root = (
        read_text(
            "migrate: {stages: [shadow, {canary: {percent: 5%}}, {migrated: null}], "
            "gates: {error_rate_vs_primary: +1%, p99_vs_primary: 1.2x}, approval: migrated}\n",
            "m.yaml",
        )
        .files[0]
        .root
    )
    assert root is not None
    assert list(validator.iter_errors({"routes": [{**A_ROUTE, **_plain(root)}]})) == []


def test_a_gate_written_null_is_not_checked() -> None:
    config = load_config_text(
        ROUTE.format(plan="      stages: [migrated]\n      gates: {error_rate_vs_primary: null}"),
        "m.yaml",
    )
    plan = config.routes[0].migrate
    assert plan is not None
    assert plan.gates.error_rate_vs_primary is None
