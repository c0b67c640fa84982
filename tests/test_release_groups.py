"""A canary group moves as one: kill, enable, set and guard trips on any of its routes
change every route of the group in one atomic store write; ``--only-route`` detaches.

``ReleaseControls`` runs on real stores (a state file in a temp dir, or the memory
store) and a real audit log; guards run on a fake clock. No sleeps.
"""

from __future__ import annotations

import doctest
import importlib
import json
import logging
import threading
from pathlib import Path

import pytest

from strangler.config import load_config_text
from strangler.config.model import Slo
from strangler.release import Guards, RouteState, RuntimeState
from strangler.release.controls import (
    ReleaseControls,
    Scope,
    UnknownGroup,
    UnknownRoute,
    canary_groups,
)
from strangler.release.state import AuditLog, FileStateStore, MemoryStateStore, StateStore

ROUTES: dict[str, Slo | None] = {
    "orders-read": None,
    "orders-list": None,
    "orders-create": Slo(error_rate=0.1, window=60.0, min_requests=10),
    "invoices": None,
}
GROUPS = {"orders-read": "orders", "orders-list": "orders", "orders-create": "orders"}
ORDERS = ("orders-read", "orders-list", "orders-create")


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "file":
        return FileStateStore.in_dir(tmp_path / "state")
    return MemoryStateStore()


def controls_on(store: StateStore, tmp_path: Path, clock: Clock | None = None) -> ReleaseControls:
    clock = clock or Clock()
    controls = ReleaseControls(
        store, AuditLog.in_dir(tmp_path / "audit"), clock=clock, wall=lambda: 1.7e9
    )
    controls.start(ROUTES, GROUPS)
    return controls


def audit(controls: ReleaseControls) -> list[dict[str, object]]:
    return controls.events(100)


def test_doctests() -> None:
    module = importlib.import_module("strangler.release.controls")
    assert doctest.testmod(module).failed == 0


def test_canary_groups_from_a_config() -> None:
    config = load_config_text(
        """
upstreams: {legacy: "http://127.0.0.1:1", new: "http://127.0.0.1:2"}
routes:
  - {name: a, owner: t, match: {path: /a}, to: legacy,
     canary: {to: new, percent: 5%, sticky: header:X-U, group: g}}
  - {name: b, owner: t, match: {path: /b}, to: legacy, canary: {to: new, percent: 5%}}
  - {name: c, owner: t, match: {path: /c}, to: new}
"""
    )
    assert canary_groups(config.routes) == {"a": "g"}


def test_scopes(store: StateStore, tmp_path: Path) -> None:
    controls = controls_on(store, tmp_path)
    assert controls.groups() == {"orders": ORDERS}
    assert controls.group_of("orders-list") == "orders"
    assert controls.group_of("invoices") is None
    assert controls.scope("orders-list") == Scope(routes=ORDERS, group="orders")
    assert controls.scope("orders-list", only_route=True) == Scope(
        routes=("orders-list",), detached="orders"
    )
    assert controls.scope("invoices", only_route=True) == Scope(routes=("invoices",))
    assert controls.scope(group="orders") == Scope(routes=ORDERS, group="orders")
    assert controls.scope() == Scope(routes=tuple(sorted(ROUTES)), every=True)
    with pytest.raises(UnknownRoute):
        controls.scope("nope")
    with pytest.raises(UnknownGroup):
        controls.scope(group="nope")


async def test_killing_one_route_of_a_group_kills_the_group(
    store: StateStore, tmp_path: Path
) -> None:
    controls = controls_on(store, tmp_path)
    write = await controls.kill("orders-create", "admin@127.0.0.1", reason="deploy 42 broke it")
    assert write.scope.group == "orders"
    assert [c.route for c in write.changes] == list(ORDERS)
    assert write.changed
    assert {n: controls.state.for_route(n).killed for n in ROUTES} == {
        "orders-read": True,
        "orders-list": True,
        "orders-create": True,
        "invoices": False,
    }
    assert set(store.load()) == set(ORDERS)
    events = audit(controls)
    assert [e["target"] for e in events] == list(ORDERS)
    for e in events:
        assert e["action"] == "rollback"
        assert e["who"] == "admin@127.0.0.1"
        assert e["reason"] == "deploy 42 broke it"
        assert e["group"] == "orders"
        assert e["routes"] == list(ORDERS)
        assert "detached" not in e


async def test_only_route_detaches_one_route(store: StateStore, tmp_path: Path) -> None:
    controls = controls_on(store, tmp_path)
    await controls.kill(controls.scope("orders-create", only_route=True), "admin@x")
    assert [n for n in ROUTES if controls.state.for_route(n).killed] == ["orders-create"]
    (event,) = audit(controls)
    assert event["detached"] == "orders"
    assert "group" not in event
    assert "reason" not in event  # none given: left out


async def test_enable_a_group_clears_kills_and_guards(store: StateStore, tmp_path: Path) -> None:
    controls = controls_on(store, tmp_path)
    await controls.kill(controls.scope(group="orders"), "admin@x")
    store.update("orders-read", lambda s: s.trip("p99", at=5.0))  # another worker's trip
    await controls.sync()
    write = await controls.enable("orders-list", "admin@x")
    assert [c.route for c in write.changes] == list(ORDERS)
    assert all(controls.state.for_route(n).is_default for n in ROUTES)
    assert store.load() == {}
    assert write.changes[0].before.guard_tripped


async def test_set_percent_on_a_grouped_route_sets_the_group(
    store: StateStore, tmp_path: Path
) -> None:
    controls = controls_on(store, tmp_path)
    await controls.set_percent("orders-read", 0.25, "admin@x")
    assert {n: controls.state.for_route(n).percent_override for n in ORDERS} == dict.fromkeys(
        ORDERS, 0.25
    )
    await controls.set_percent(controls.scope("orders-read", only_route=True), None, "admin@x")
    assert controls.state.for_route("orders-read").percent_override is None
    assert controls.state.for_route("orders-list").percent_override == 0.25


async def test_every_route_in_one_write(store: StateStore, tmp_path: Path) -> None:
    controls = controls_on(store, tmp_path)
    write = await controls.kill_all("admin@x", reason="incident 7")
    assert write.scope.every
    assert all(controls.state.for_route(n).killed for n in ROUTES)
    events = audit(controls)
    assert len(events) == len(ROUTES)
    assert all(e["reason"] == "incident 7" and "routes" not in e for e in events)
    write = await controls.enable_all("admin@x")
    assert all(c.changed for c in write.changes)
    assert store.load() == {}
    again = await controls.enable_all("admin@x")
    assert not again.changed
    assert len(audit(controls)) == 2 * len(ROUTES)  # a write that changes nothing is not audited


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_update_routes_is_all_or_none(kind: str, tmp_path: Path) -> None:
    store: StateStore = FileStateStore.in_dir(tmp_path) if kind == "file" else MemoryStateStore()
    results = store.update_routes(["a", "b", "a"], lambda s: s.kill(True, at=3.0))
    assert [r.route for r in results] == ["a", "b"]  # each route once
    assert results[0].routes == results[1].routes == store.load()
    calls = []

    def half(s: RouteState) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("the second route refuses")
        s.set_percent(0.5, at=4.0)

    with pytest.raises(ValueError, match="refuses"):
        store.update_routes(["a", "b"], half)
    assert store.load() == {n: RouteState(killed=True, since=3.0) for n in "ab"}


def test_a_reader_sees_a_group_write_whole(tmp_path: Path) -> None:
    """Two workers on one state file: the other worker's next poll sees every route
    of the group changed at once (one file replace), never some of them."""
    writer, reader = FileStateStore.in_dir(tmp_path), FileStateStore.in_dir(tmp_path)
    state = RuntimeState()
    state.reconcile(ORDERS)
    reader.load()
    inode = writer.path.stat().st_ino if writer.path.exists() else None
    writer.update_routes(ORDERS, lambda s: s.kill(True, at=1.0))
    assert writer.path.stat().st_ino != inode
    assert reader.changed()
    assert sorted(state.apply(reader.load())) == sorted(ORDERS)


def test_a_reader_polling_during_group_writes_never_sees_half(tmp_path: Path) -> None:
    """Another worker loads the file as fast as it can while a group is rolled back and
    enabled again and again: every load holds all of the group's routes or none."""
    writer, reader = FileStateStore.in_dir(tmp_path), FileStateStore.in_dir(tmp_path)
    done = threading.Event()
    seen: list[frozenset[str]] = []

    def read() -> None:
        while not done.is_set():
            seen.append(frozenset(n for n, s in reader.load().items() if s.killed))

    def killed(s: RouteState) -> None:
        s.kill(True, at=1.0)

    def alive(s: RouteState) -> None:
        s.kill(False, at=1.0)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for i in range(10):
            writer.update_routes(ORDERS, killed if i % 2 == 0 else alive)
    finally:
        done.set()
        thread.join()
    assert set(seen) <= {frozenset(), frozenset(ORDERS)}
    assert len(seen) > 1


def test_guards_trip_a_whole_group_at_once() -> None:
    clock = Clock()
    guards = Guards(clock)
    guards.reconcile(ROUTES)
    state = RuntimeState()
    state.reconcile(ROUTES)
    guard = guards.get("orders-create")
    assert guard is not None
    for _ in range(10):
        guard.observe(False, 0.01)
    groups = {n: ("orders", ORDERS) for n in ORDERS}
    (trip,) = guards.check(state, now=clock.now, wall=5.0, groups=groups)
    assert trip.route == "orders-create"
    assert trip.routes == ORDERS
    assert trip.group == "orders"
    assert "group 'orders' rolled back by route 'orders-create': error rate" in trip.reason
    assert [n for n, s in state if s.guard_tripped] == list(ORDERS)
    assert state.for_route("orders-read").guard_reason == trip.reason
    assert guards.check(state, now=clock.now, wall=6.0, groups=groups) == []


async def test_a_guard_trip_persists_the_whole_group(store: StateStore, tmp_path: Path) -> None:
    clock = Clock()
    controls = controls_on(store, tmp_path, clock)
    guard = controls.guards.get("orders-create")
    assert guard is not None
    for _ in range(10):
        guard.observe(False, 0.01)
    await controls.check_guards()
    stored = store.load()
    assert sorted(stored) == sorted(ORDERS)
    assert all(s.guard_tripped for s in stored.values())
    events = audit(controls)
    assert [e["target"] for e in events] == list(ORDERS)
    assert {e["who"] for e in events} == {"guard"}
    assert {e["group"] for e in events} == {"orders"}
    assert "error rate" in str(events[0]["reason"])
    # Another worker that tripped the group first: no second change, no second audit.
    await controls.check_guards()
    assert len(audit(controls)) == 3


def test_audit_takes_more_fields_without_renaming(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", clock=lambda: 0.0)
    entry = log.append("cli:ann", "rollback", "a", {}, {}, reason="why", group=None, api_token="x")
    line = json.loads((tmp_path / "audit.jsonl").read_text())
    assert line == entry
    assert list(line) == [
        "time",
        "who",
        "action",
        "target",
        "before",
        "after",
        "reason",
        "api_token",
    ]
    assert line["api_token"] == "[redacted]"


async def test_a_reload_that_splits_a_group_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    controls = controls_on(MemoryStateStore(), tmp_path)
    await controls.kill(controls.scope(group="orders"), "admin@x")
    with caplog.at_level(logging.WARNING, logger="strangler.release"):
        controls.reconcile(ROUTES, GROUPS)
        assert caplog.records == []  # the group agrees
        controls.reconcile(ROUTES, {**GROUPS, "invoices": "orders"})  # joins a rolled-back group
    (record,) = caplog.records
    assert "canary group 'orders' is split" in record.getMessage()
    assert "invoices: as the file says" in record.getMessage()
    assert controls.groups()["orders"] == (*ORDERS, "invoices")


async def test_an_enable_elsewhere_forgets_this_replicas_window(tmp_path: Path) -> None:
    """Two replicas (one state file, each its own guards): after replica A enables a
    tripped route, replica B's window starts afresh when it reads the change, so B
    does not trip the route again on the answers A's operator just forgave."""
    a = controls_on(FileStateStore.in_dir(tmp_path / "state"), tmp_path / "a")
    b = controls_on(FileStateStore.in_dir(tmp_path / "state"), tmp_path / "b")
    guard = b.guards.get("orders-create")
    assert guard is not None
    for _ in range(10):
        guard.observe(False, 0.01)
    await b.check_guards()
    await a.sync()
    assert a.state.for_route("orders-create").guard_tripped
    await a.enable("orders-create", "ann")
    assert guard.evaluate().requests == 10  # B has not read the enable yet
    await b.sync()
    assert not b.state.for_route("orders-create").guard_tripped
    assert guard.evaluate().requests == 0
    await b.check_guards()
    assert not b.state.for_route("orders-create").guard_tripped
