"""Migration progress: path folding, the bounded top-K, the tracker's counters,
decommission readiness (with an injected clock, never a sleep), persistence and merging
across workers, and the scrape-time collector."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from pathlib import Path

import pytest

from strangler.config import load_config_text
from strangler.metrics import Metrics
from strangler.progress import ProgressCollector, ProgressTracker, fold_path, merge, merge_states
from strangler.progress.fold import MAX_TEMPLATE, probe_path
from strangler.progress.state import (
    EndpointCounts,
    ProgressState,
    RouteCounts,
    read_state,
    write_state,
)
from strangler.progress.status import claimed_by
from strangler.progress.topk import SpaceSaving
from strangler.progress.tracker import MAX_KEY
from strangler.progress.windows import WINDOWS
from strangler.runtime import Snapshot, SnapshotHolder, compile_snapshot

T0 = 1_700_000_000.0
DAY = 86400.0
IDLE = 14 * DAY

CONFIG = """
upstreams:
  legacy: http://127.0.0.1:1
  billing: http://127.0.0.1:2
routes:
  - name: invoices-read
    owner: team-billing
    match: {path: "/api/invoices/{id:int}", methods: [GET]}
    to: billing
  - name: customers
    owner: team-crm
    match: {path_prefix: /api/customers}
    to: legacy
"""


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def snapshot(text: str = CONFIG) -> Snapshot:
    return compile_snapshot(load_config_text(text), Metrics())


def tracker(clock: Clock, snap: Snapshot | None = None, **kw: object) -> ProgressTracker:
    holder = SnapshotHolder(snap) if snap is not None else None
    return ProgressTracker(holder, clock=clock, **kw)  # type: ignore[arg-type]


# -- folding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/", "/"),
        ("/users", "/users"),
        ("/users/", "/users/"),
        ("/users/123/orders/9", "/users/{id}/orders/{id}"),
        ("/users/0f8fad5b-d9cb-469f-a165-70867728950e", "/users/{uuid}"),
        ("/users/0F8FAD5B-D9CB-469F-A165-70867728950E/x", "/users/{uuid}/x"),
        ("/blobs/9f86d081884c7d659a2feaa0c55ad015", "/blobs/{hash}"),
        ("/commits/deadbeefcafe0123", "/commits/{hash}"),
        ("/commits/deadbeef", "/commits/deadbeef"),  # 8 hex digits: too short for a hash
        ("/reports/2024-01-31", "/reports/{date}"),
        ("/reports/2024-01-31T10:00:00Z/csv", "/reports/{date}/csv"),
        ("/invoices/123.pdf", "/invoices/{id}.pdf"),
        ("/files/report.csv", "/files/report.csv"),
        ("/static/app.039bac4c.js", "/static/app.{hash}.js"),
        ("/static/js/main-3f2a1c9e.chunk.css", "/static/js/main-{hash}.chunk.css"),
        ("/static/2.7e5c9a1f2b.js", "/static/2.{hash}.js"),
        ("/img/logo.v2.png", "/img/logo.v2.png"),
        ("/fonts/deadbeef.woff", "/fonts/deadbeef.woff"),  # no digit: a word, not a hash
        ("/orders/ord_12345", "/orders/{id}"),
        ("/invoices/INV-2024-0001", "/invoices/{id}"),
        ("/reset/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc", "/reset/{token}"),
        ("/s/QWxhZGRpbjpvcGVuIHNlc2FtZQ", "/s/{token}"),  # base64 without digits
        ("/users/ann@example.com/prefs", "/users/{email}/prefs"),
        ("/api/v2/items", "/api/v2/items"),
        ("/auth/oauth2/callback", "/auth/oauth2/callback"),
        ("/hash/sha256", "/hash/sha256"),
        ("/docs/rfc7231", "/docs/rfc7231"),
        ("/blog/how-to-cook-pasta-in-10-minutes", "/blog/how-to-cook-pasta-in-10-minutes"),
        ("/api/getUserAccountSettingsForAdmin", "/api/getUserAccountSettingsForAdmin"),
        ("/internationalization", "/internationalization"),
        ("/café/123", "/café/{id}"),
        ("/a/١٢٣", "/a/١٢٣"),  # non-ASCII digits are not an id
        ("*", "*"),
    ],
)
def test_fold_path(path: str, template: str) -> None:
    assert fold_path(path) == template


def test_fold_path_bounds_long_and_deep_paths() -> None:
    deep = fold_path("/a" * 100)
    assert deep == "/a" * 16 + "/…"
    wide = fold_path("/" + "word" * 200)
    assert len(wide) == MAX_TEMPLATE + 1
    assert wide.endswith("…")


def test_probe_path_matches_router_converters() -> None:
    snap = snapshot(
        """
upstreams: {legacy: http://127.0.0.1:1, billing: http://127.0.0.1:2}
routes:
  - {name: by-int, owner: t, match: {path: "/a/{x:int}"}, to: billing}
  - {name: by-uuid, owner: t, match: {path: "/b/{x:uuid}"}, to: billing}
  - {name: by-any, owner: t, match: {path: "/c/{x}/d"}, to: billing}
  - {name: by-header, owner: t, match: {path: "/e/{x}", headers: {X-Beta: "1"}}, to: billing}
"""
    )
    assert probe_path("/c/{token}/d") == "/c/T0kenT0kenT0kenT0ken/d"

    def route(key: str) -> str | None:
        r = claimed_by(snap, key)
        return None if r is None else r.name

    assert route("GET " + fold_path("/a/17")) == "by-int"
    assert route("GET " + fold_path("/b/0f8fad5b-d9cb-469f-a165-70867728950e")) == "by-uuid"
    assert route("POST " + fold_path("/c/2024-01-31/d")) == "by-any"
    assert route("GET /e/{id}") is None  # needs a header the probe does not carry
    assert route("GET /nowhere") is None


# -- the top-K table ------------------------------------------------------------------


def test_space_saving_is_exact_below_capacity() -> None:
    top = SpaceSaving(10)
    for key in ["a", "b", "a", "c", "a", "b"]:
        top.hit(key, T0)
    assert [(k, e.count, e.overcount) for k, e in top.ranked()] == [
        ("a", 3, 0),
        ("b", 2, 0),
        ("c", 1, 0),
    ]
    assert top.floor == 0


def test_space_saving_keeps_heavy_hitters_under_churn() -> None:
    rng = random.Random(7)
    capacity = 50
    heavy = {"GET /orders/{id}": 0.20, "GET /customers/{id}": 0.12, "POST /login": 0.06}
    stream: list[str] = []
    for i in range(20_000):
        r = rng.random()
        acc = 0.0
        for key, p in heavy.items():
            acc += p
            if r < acc:
                stream.append(key)
                break
        else:
            stream.append(f"GET /scan/{i}")  # a one-off every time: pure churn
    top = SpaceSaving(capacity)
    for key in stream:
        top.hit(key, T0)
    truth = Counter(stream)
    m = len(stream)
    assert len(top) == capacity
    # The Space-Saving invariants.
    assert sum(e.count for e in top.table.values()) == m
    assert top.floor <= m / capacity
    for key, e in top.table.items():
        assert truth[key] <= e.count <= truth[key] + e.overcount
        assert e.overcount <= top.floor
    # Every key above M/m is tracked, and the heavy hitters rank first, in order.
    for key, n in truth.items():
        if n > m / capacity:
            assert key in top.table
    assert [k for k, _ in top.ranked()[:3]] == list(heavy)


def test_space_saving_evicts_the_true_minimum() -> None:
    top = SpaceSaving(3)
    for key, n in [("a", 5), ("b", 2), ("c", 7)]:
        for _ in range(n):
            top.hit(key, T0)
    top.hit("d", T0)  # evicts b (2): d starts at 3, overcount 2
    assert set(top.table) == {"a", "c", "d"}
    assert (top.table["d"].count, top.table["d"].overcount) == (3, 2)
    for _ in range(5):
        top.hit("d", T0)  # d: 8, so a (5) is now the smallest; its heap entry is stale-free
    top.hit("e", T0)
    assert set(top.table) == {"c", "d", "e"}
    assert top.floor == 5
    assert top.discard("c") is not None
    top.hit("f", T0)  # room again: exact start
    assert top.table["f"].count == 1


def test_space_saving_rejects_zero_capacity() -> None:
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        SpaceSaving(0)


# -- the tracker's counters ----------------------------------------------------------


def test_record_counts_per_route_and_errors() -> None:
    clock = Clock()
    snap = snapshot()
    invoices, customers = snap.routes
    t = tracker(clock)
    for status in (200, 200, 503):
        t.record(invoices.name, invoices.target, "GET", "/api/invoices/1", status)
    t.record(customers.name, customers.target, "GET", "/api/customers", 500)
    t.record(customers.name, customers.target, "GET", "/api/customers", 499)
    counts = t.route_counts()
    assert (counts["invoices-read"].new, counts["invoices-read"].legacy) == (3, 0)
    assert counts["invoices-read"].errors == 1
    assert counts["invoices-read"].last_legacy == 0.0  # legacy never answered it
    assert (counts["customers"].new, counts["customers"].legacy) == (0, 2)
    assert counts["customers"].errors == 1
    assert counts["customers"].last_legacy == T0
    assert t.endpoint_keys == frozenset()  # routed requests teach no endpoints


def test_last_legacy_moves_at_most_once_a_second() -> None:
    clock = Clock()
    customers = snapshot().routes[1]
    t = tracker(clock)
    t.record(customers.name, customers.target, "GET", "/api/customers", 200)
    clock.t = T0 + 0.5
    t.record(customers.name, customers.target, "GET", "/api/customers", 200)
    assert t.route_counts()["customers"].last_legacy == T0
    clock.t = T0 + 1.25
    t.record(customers.name, customers.target, "GET", "/api/customers", 200)
    assert t.route_counts()["customers"].last_legacy == T0 + 1.25


def test_unrouted_requests_learn_endpoints() -> None:
    clock = Clock()
    snap = snapshot()
    t = tracker(clock)
    for path in ("/users/1", "/users/2", "/users/3/orders/4", "/users/1"):
        t.record(snap.unrouted.name, snap.unrouted.target, "GET", path, 200)
    clock.t = T0 + 60
    t.record(snap.unrouted.name, snap.unrouted.target, "DELETE", "/users/9", 204)
    status = t.snapshot(snap)
    assert [(b["endpoint"], b["requests"]) for b in status["backlog"]] == [
        ("GET /users/{id}", 3),
        ("DELETE /users/{id}", 1),
        ("GET /users/{id}/orders/{id}", 1),
    ]
    assert status["backlog"][1]["last_seen"] == "2023-11-14T22:14:20Z"
    assert status["backlog"][0]["share"] == pytest.approx(3 / 5)


def test_memo_and_table_stay_bounded() -> None:
    clock = Clock()
    snap = snapshot()
    t = tracker(clock, max_endpoints=10, memo_size=8)
    for i in range(500):
        t.record(
            snap.unrouted.name, snap.unrouted.target, "GET", f"/hot/{i}", 200
        )  # one endpoint, many paths
        t.record(
            snap.unrouted.name, snap.unrouted.target, "GET", f"/scan{i}/x", 404
        )  # a new endpoint every time
    assert t.memo_entries <= 8
    assert len(t.endpoint_keys) == 10
    status = t.snapshot(snap)
    assert status["backlog"][0]["endpoint"] == "GET /hot/{id}"
    assert status["backlog"][0]["requests"] == 500
    t.record(snap.unrouted.name, snap.unrouted.target, "GET", "/" + "x" * 5000, 404)
    assert max(len(k) for k in t.endpoint_keys) <= MAX_KEY + 1


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="worker id"):
        ProgressTracker(worker="../etc")
    with pytest.raises(ValueError, match="idle_after must be positive"):
        ProgressTracker(idle_after=0)


# -- the status model and decommission readiness -------------------------------------


def test_status_schema_and_overall_ratio() -> None:
    clock = Clock()
    snap = snapshot()
    invoices, customers = snap.routes
    t = tracker(clock, snap)
    for _ in range(3):
        t.record(invoices.name, invoices.target, "GET", "/api/invoices/7", 200)
    t.record(customers.name, customers.target, "GET", "/api/customers/5", 502)
    t.record(snap.unrouted.name, snap.unrouted.target, "GET", "/legacy/report.csv", 200)
    s = t.snapshot(snap, T0)
    assert set(s) == {
        "version",
        "generated_at",
        "idle_after_days",
        "overall",
        "routes",
        "backlog",
        "backlog_total",
        "decommission",
    }
    assert s["version"] == snap.version
    assert s["generated_at"] == "2023-11-14T22:13:20Z"
    assert s["idle_after_days"] == 14
    assert s["overall"] == {
        "requests": 5,
        "new": 3,
        "legacy": 2,
        "migrated_ratio": 0.6,
        "routes_total": 2,
        "routes_migrated": 1,
        "windows": {w: {"requests": 5, "new": 3, "legacy": 2, "new_share": 0.6} for w in WINDOWS},
        "coverage": {"endpoints_seen": 1, "endpoints_moved": 0, "ratio": 0.0},
    }
    assert [r["name"] for r in s["routes"]] == ["invoices-read", "customers"]  # config order
    inv, cus = s["routes"]
    assert inv == {
        "name": "invoices-read",
        "owner": "team-billing",
        "primary": "billing",
        "target": "new",
        "state": "migrated",
        "canary_percent": 0.0,
        "requests": 3,
        "new": 3,
        "legacy": 0,
        "new_share": 1.0,
        "errors": 0,
        "error_ratio": 0.0,
        "last_legacy_at": None,
        "tracking_since": "2023-11-14T22:13:20Z",
        "decommission_candidate": False,
        "windows": {w: {"requests": 3, "new": 3, "legacy": 0, "new_share": 1.0} for w in WINDOWS},
        "reset_at": None,
    }
    assert (cus["state"], cus["target"], cus["primary"]) == ("legacy", "legacy", "legacy")
    assert (cus["errors"], cus["error_ratio"], cus["new_share"]) == (1, 1.0, 0.0)
    assert cus["last_legacy_at"] == "2023-11-14T22:13:20Z"
    assert s["backlog"] == [
        {
            "endpoint": "GET /legacy/report.csv",
            "requests": 1,
            "overcount": 0,
            "share": 0.2,
            "last_seen": "2023-11-14T22:13:20Z",
            "status_classes": ["2xx"],
        }
    ]
    assert s["decommission"] == []
    json.dumps(s)  # serialisable as is


def test_backlog_in_status_is_the_top_50() -> None:
    clock = Clock()
    snap = snapshot()
    t = tracker(clock)
    for i in range(60):
        for _ in range(i + 1):
            t.record(snap.unrouted.name, snap.unrouted.target, "GET", f"/p{i}x/list", 200)
    s = t.snapshot(snap)
    assert len(s["backlog"]) == 50
    assert s["backlog_total"] == 60
    assert s["backlog"][0]["endpoint"] == "GET /p59x/list"
    counts = [b["requests"] for b in s["backlog"]]
    assert counts == sorted(counts, reverse=True)


def test_a_new_proxy_calls_nothing_a_candidate_until_it_has_watched_long_enough() -> None:
    clock = Clock()
    snap = snapshot()
    t = tracker(clock, snap)
    t.reconcile(snap)  # the flusher does this: every route starts being tracked now
    assert t.snapshot(snap, T0 + IDLE - 1)["decommission"] == []
    s = t.snapshot(snap, T0 + IDLE + DAY)
    # customers (legacy primary, never answered) is idle; invoices-read (born on the
    # new service, no legacy history) never is.
    assert s["decommission"] == [
        {"kind": "route", "name": "customers", "last_legacy_at": None, "idle_days": 15.0}
    ]
    assert [r["decommission_candidate"] for r in s["routes"]] == [False, True]


def test_route_is_a_candidate_once_legacy_has_been_idle_long_enough() -> None:
    clock = Clock()
    snap = snapshot()
    customers = snap.routes[1]
    t = tracker(clock, snap)
    clock.t = T0 + 10 * DAY
    t.record(customers.name, customers.target, "GET", "/api/customers", 200)
    assert t.snapshot(snap, T0 + 10 * DAY + IDLE)["decommission"] == []
    later = T0 + 10 * DAY + IDLE + 0.5 * DAY
    assert t.snapshot(snap, later)["decommission"] == [
        {
            "kind": "route",
            "name": "customers",
            "last_legacy_at": "2023-11-24T22:13:20Z",
            "idle_days": 14.5,
        }
    ]


def test_migrated_route_keeps_its_legacy_history_across_a_reload() -> None:
    clock = Clock()
    before = snapshot(CONFIG.replace("to: billing", "to: legacy"))
    holder = SnapshotHolder(before)
    t = ProgressTracker(holder, clock=clock)
    t.record(
        before.routes[0].name, before.routes[0].target, "GET", "/api/invoices/1", 200
    )  # legacy answers it
    after = snapshot()  # invoices-read now goes to billing
    holder.swap(after)
    clock.t = T0 + DAY
    t.record(after.routes[0].name, after.routes[0].target, "GET", "/api/invoices/1", 200)
    row = t.snapshot(after, T0 + DAY)["routes"][0]
    assert (row["state"], row["legacy"], row["new"]) == ("migrated", 1, 1)
    assert row["last_legacy_at"] == "2023-11-14T22:13:20Z"
    assert not row["decommission_candidate"]
    assert t.snapshot(after, T0 + IDLE + 1)["routes"][0]["decommission_candidate"]


def test_endpoint_claimed_by_a_new_route_leaves_the_backlog_with_its_history() -> None:
    clock = Clock()
    before = snapshot(
        """
upstreams: {legacy: http://127.0.0.1:1, billing: http://127.0.0.1:2}
"""
    )
    holder = SnapshotHolder(before)
    t = ProgressTracker(holder, clock=clock)
    t.record(before.unrouted.name, before.unrouted.target, "GET", "/api/invoices/17", 200)
    t.record(before.unrouted.name, before.unrouted.target, "GET", "/old-home", 200)
    assert [b["endpoint"] for b in t.snapshot(before)["backlog"]] == [
        "GET /api/invoices/{id}",
        "GET /old-home",
    ]
    after = snapshot()
    holder.swap(after)
    clock.t = T0 + IDLE + 1
    s = t.snapshot(after)
    assert [b["endpoint"] for b in s["backlog"]] == ["GET /old-home"]
    assert s["routes"][0]["last_legacy_at"] == "2023-11-14T22:13:20Z"
    assert s["decommission"] == [
        {
            "kind": "route",
            "name": "invoices-read",
            "last_legacy_at": "2023-11-14T22:13:20Z",
            "idle_days": 14.0,
        },
        # customers is not: the proxy only started tracking it with this config.
        {
            "kind": "endpoint",
            "name": "GET /old-home",
            "last_legacy_at": "2023-11-14T22:13:20Z",
            "idle_days": 14.0,
        },
    ]


# -- persistence and merging ----------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    clock = Clock()
    snap = snapshot()
    t = tracker(clock, snap, worker="0")
    t.record(snap.routes[0].name, snap.routes[0].target, "GET", "/api/invoices/1", 500)
    t.record(snap.routes[1].name, snap.routes[1].target, "GET", "/api/customers", 200)
    t.record(snap.unrouted.name, snap.unrouted.target, "GET", "/users/5", 200)
    path = t.state_file(tmp_path)
    assert path == tmp_path / "progress-0.json"
    t.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["progress-0.json"]  # no temp file left
    restarted = tracker(Clock(T0 + DAY), snap, worker="0")
    assert restarted.load(path)
    got, want = restarted.export(), t.export()
    assert got.endpoints == want.endpoints
    for name, counts in want.routes.items():
        assert got.routes[name].legacy == counts.legacy
        assert got.routes[name].new == counts.new
        assert got.routes[name].errors == counts.errors
        assert got.routes[name].last_legacy == counts.last_legacy
        assert got.routes[name].since == counts.since  # tracking_since survives
    restarted.record(snap.unrouted.name, snap.unrouted.target, "GET", "/users/6", 200)
    assert restarted.export().endpoints["GET /users/{id}"].count == 2


def test_load_ignores_missing_and_broken_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    t = tracker(Clock())
    assert not t.load(tmp_path / "progress-0.json")
    bad = tmp_path / "progress-1.json"
    bad.write_text('{"format": "strangler-progress/1", "routes": {"a": {"legacy": -1}}}')
    with caplog.at_level(logging.WARNING, logger="strangler.progress"):
        assert not t.load(bad)
    assert "'legacy' must be a non-negative integer" in caplog.text
    (tmp_path / "progress-2.json").write_text("{not json")
    assert merge(sorted(tmp_path.glob("*.json"))).routes == {}


def test_merge_sums_counts_and_keeps_latest_times(tmp_path: Path) -> None:
    a = ProgressState(
        routes={"r": RouteCounts(legacy=2, new=1, errors=1, last_legacy=T0, since=T0)},
        endpoints={"GET /x": EndpointCounts(3, 0, T0), "GET /a": EndpointCounts(1, 0, T0)},
    )
    b = ProgressState(
        routes={
            "r": RouteCounts(legacy=1, new=4, errors=0, last_legacy=T0 + 5, since=T0 - 9),
            "s": RouteCounts(new=2, since=T0),
        },
        endpoints={"GET /x": EndpointCounts(2, 0, T0 + 7)},
    )
    write_state(tmp_path / "progress-0.json", a, worker="0", saved_at=T0)
    write_state(tmp_path / "progress-1.json", b, worker="1", saved_at=T0)
    m = merge(sorted(tmp_path.glob("progress-*.json")))
    assert m.routes["r"] == RouteCounts(legacy=3, new=5, errors=1, last_legacy=T0 + 5, since=T0 - 9)
    assert m.routes["s"] == RouteCounts(new=2, since=T0)
    assert m.endpoints == {
        "GET /x": EndpointCounts(5, 0, T0 + 7),
        "GET /a": EndpointCounts(1, 0, T0),
    }
    assert read_state(tmp_path / "progress-1.json").routes == b.routes


def test_merge_of_full_tables_keeps_the_error_bound() -> None:
    # Worker a dropped keys seen at most twice, so "GET /y" (absent there) may have
    # been seen twice by a: the merged count and overcount both carry that.
    a = ProgressState(endpoints={"GET /x": EndpointCounts(9, 2, T0)}, floor=2, capacity=1)
    b = ProgressState(endpoints={"GET /y": EndpointCounts(4, 0, T0)}, floor=0, capacity=1)
    m = merge_states([a, b])
    assert m.endpoints == {"GET /x": EndpointCounts(9, 2, T0)}  # capacity 1: the top one
    assert m.floor == 6  # the dropped "GET /y": 4 + a's floor 2
    m2 = merge_states([a, ProgressState(endpoints={"GET /y": EndpointCounts(4, 0, T0)})])
    assert m2.endpoints["GET /y"] == EndpointCounts(6, 2, T0)


async def test_flusher_saves_and_saves_again_when_cancelled(tmp_path: Path) -> None:
    clock = Clock()
    snap = snapshot()
    t = tracker(clock, snap, worker="3")
    task = asyncio.get_running_loop().create_task(t.run_flusher(tmp_path, interval=3600))
    await asyncio.sleep(0)  # let it start (a yield, not a wait)
    t.record(snap.routes[1].name, snap.routes[1].target, "GET", "/api/customers", 200)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    saved = read_state(tmp_path / "progress-3.json")
    assert saved.routes["customers"].legacy == 1
    assert saved.routes["invoices-read"].since == T0  # reconciled: tracked from now


async def test_flush_reads_peers_and_snapshot_merges_them(tmp_path: Path) -> None:
    clock = Clock()
    snap = snapshot()
    w0, w1 = tracker(clock, snap, worker="0"), tracker(clock, snap, worker="1")
    w0.record(snap.routes[0].name, snap.routes[0].target, "GET", "/api/invoices/1", 200)
    w1.record(snap.routes[0].name, snap.routes[0].target, "GET", "/api/invoices/2", 200)
    w1.record(snap.unrouted.name, snap.unrouted.target, "GET", "/users/3", 200)
    await w1.flush(tmp_path)
    await w0.flush(tmp_path)
    assert len(w0.peers) == 1
    s = w0.snapshot(snap)
    assert s["overall"]["requests"] == 3
    assert s["routes"][0]["new"] == 2
    assert s["backlog"][0]["endpoint"] == "GET /users/{id}"


# -- the collector ---------------------------------------------------------------------


def test_collector_reports_route_states_and_candidates() -> None:
    clock = Clock()
    metrics = Metrics()
    snap = compile_snapshot(load_config_text(CONFIG), metrics)
    holder = SnapshotHolder(snap)
    t = ProgressTracker(holder, clock=clock)
    metrics.registry.register(ProgressCollector(t, holder))
    reg = metrics.registry
    t.record(snap.unrouted.name, snap.unrouted.target, "GET", "/users/1", 200)
    t.record(snap.unrouted.name, snap.unrouted.target, "GET", "/orders/1", 200)
    assert reg.get_sample_value("strangler_routes", {"state": "migrated"}) == 1
    assert reg.get_sample_value("strangler_routes", {"state": "legacy"}) == 1
    assert reg.get_sample_value("strangler_routes", {"state": "canary"}) == 0
    assert reg.get_sample_value("strangler_route_migrated", {"route": "invoices-read"}) == 1
    assert reg.get_sample_value("strangler_route_migrated", {"route": "customers"}) == 0
    candidate = "strangler_route_decommission_candidate"
    assert reg.get_sample_value(candidate, {"route": "customers"}) == 0
    assert reg.get_sample_value("strangler_legacy_endpoints_tracked") == 2
    clock.t = T0 + IDLE + 1
    assert reg.get_sample_value(candidate, {"route": "customers"}) == 1
    assert reg.get_sample_value(candidate, {"route": "invoices-read"}) == 0
