"""Migration progress over time: windowed shares, exact merging across workers, the
history, resets, a clean backlog (status classes, ignore globs, hashed file names)
and the ``progress:`` config keys. Clocks are injected: nothing waits an hour."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient, AiohttpServer

from strangler.admin.auth import Secret
from strangler.admin.progress_api import add_progress_routes
from strangler.cli_status import reset_main, status_main
from strangler.config import load_config_text
from strangler.errors import ConfigError
from strangler.metrics import Metrics
from strangler.progress import ProgressTracker, merge_states
from strangler.progress.history import history_model
from strangler.progress.state import read_state
from strangler.release.state import AuditLog
from strangler.runtime import CompiledRoute, Snapshot, SnapshotHolder, compile_snapshot
from tests.test_progress import T0, Clock

HOUR = 3600.0
DAY = 86400.0

# "customers" has been moved to billing completely; before that, legacy answered it.
MOVED = """
upstreams:
  legacy: http://127.0.0.1:1
  billing: http://127.0.0.1:2
routes:
  - {name: customers, owner: team-crm, match: {path_prefix: /api/customers}, to: billing}
  - {name: orders, owner: team-orders, match: {path_prefix: /api/orders}, to: legacy}
"""


def snap_of(text: str = MOVED) -> Snapshot:
    return compile_snapshot(load_config_text(text), Metrics())


def send(t: ProgressTracker, route: CompiledRoute, target: str, n: int, status: int = 200) -> None:
    for i in range(n):
        t.record(route.name, target, "GET", f"/api/x/{i}", status)


def moved_an_hour_ago(clock: Clock, holder: SnapshotHolder, worker: str = "0") -> ProgressTracker:
    """45 legacy answers before the move, then (an hour and a minute later) 55 new."""
    t = ProgressTracker(holder, worker=worker, clock=clock)
    customers = holder.current.routes[0]
    send(t, customers, "legacy", 45)
    t.rotate()  # what the flusher does every 5 s
    clock.t += HOUR + 60
    send(t, customers, "new", 55)
    return t


def test_a_route_moved_an_hour_ago_is_100_percent_in_the_hour_window() -> None:
    clock = Clock()
    holder = SnapshotHolder(snap_of())
    t = moved_an_hour_ago(clock, holder)
    status = t.snapshot(holder.current)
    row = status["routes"][0]
    assert row["new_share"] == 0.55  # cumulative, as before
    assert row["windows"]["1h"] == {"requests": 55, "new": 55, "legacy": 0, "new_share": 1.0}
    assert row["windows"]["5m"]["new_share"] == 1.0
    assert row["windows"]["24h"] == {"requests": 100, "new": 55, "legacy": 45, "new_share": 0.55}
    assert row["windows"]["all"]["new_share"] == 0.55
    assert status["overall"]["windows"]["1h"]["new_share"] == 1.0


def test_the_5_minute_window_drops_older_minutes() -> None:
    clock = Clock(T0 - T0 % 60)  # the start of a minute
    holder = SnapshotHolder(snap_of())
    t = ProgressTracker(holder, clock=clock)
    customers = holder.current.routes[0]
    send(t, customers, "legacy", 10)
    t.rotate()
    clock.t += 4 * 60  # the same 5-minute window (the current minute and 4 before)
    send(t, customers, "new", 10)
    w = t.snapshot(holder.current)["routes"][0]["windows"]
    assert w["5m"]["requests"] == 20
    clock.t += 60  # the legacy minute leaves the window
    w = t.snapshot(holder.current)["routes"][0]["windows"]
    assert (w["5m"]["requests"], w["5m"]["new_share"]) == (10, 1.0)
    assert w["1h"]["requests"] == 20


def test_windows_merge_exactly_across_workers(tmp_path: Path) -> None:
    clock = Clock()
    holder = SnapshotHolder(snap_of())
    a = moved_an_hour_ago(clock, holder, worker="0")
    b = ProgressTracker(holder, worker="1", clock=clock)
    orders = holder.current.routes[1]
    send(b, orders, "legacy", 7)
    for t in (a, b):
        t.save(t.state_file(tmp_path))
    saved = [read_state(tmp_path / f"progress-{w}.json") for w in ("0", "1")]
    merged = merge_states(saved)
    assert merged.series["customers"].window(clock.t, HOUR) == (0, 55)
    assert merged.series["customers"].window(clock.t, DAY) == (45, 55)
    assert merged.series["orders"].window(clock.t, 300.0) == (7, 0)
    # The same whatever the order, and a loaded file keeps its buckets.
    assert merge_states(saved[::-1]).series == merged.series
    restarted = ProgressTracker(holder, worker="0", clock=clock)
    assert restarted.load(tmp_path / "progress-0.json")
    restarted.rotate()  # nothing new: the loaded counts are not counted twice
    assert restarted.export().series["customers"].window(clock.t, DAY) == (45, 55)


def test_history_shows_a_rollback_as_a_dip_and_keeps_hourly_points() -> None:
    clock = Clock(T0 - T0 % 300)
    holder = SnapshotHolder(snap_of())
    t = ProgressTracker(holder, clock=clock)
    customers = holder.current.routes[0]
    send(t, customers, "new", 4)
    t.rotate()
    clock.t += 300
    send(t, customers, "legacy", 4)  # rolled back for five minutes
    t.rotate()
    clock.t += 300
    send(t, customers, "new", 3)
    send(t, customers, "legacy", 1)
    history = history_model(t.export(), holder.current, clock.t)
    points = history["points"]
    assert [p["new_share"] for p in points] == [1.0, 0.0, 0.75]
    assert [p["step_seconds"] for p in points] == [300, 300, 300]
    assert points[0]["routes"] == {"customers": 1.0}
    assert (points[0]["routes_migrated"], points[0]["routes_total"]) == (1, 2)
    assert history["routes"] == ["customers", "orders"]
    # Three days later the 5-minute points are gone and the hour's point is left.
    clock.t += 3 * DAY
    later = history_model(t.export(), holder.current, clock.t)["points"]
    old = [p for p in later if p["requests"]]
    assert [(p["step_seconds"], p["requests"], p["new"]) for p in old] == [(3600, 12, 7)]
    json.dumps(later)


def test_backlog_leaves_out_endpoints_that_only_answered_404() -> None:
    clock = Clock()
    holder = SnapshotHolder(snap_of())
    t = ProgressTracker(holder, clock=clock)
    unrouted = holder.current.unrouted
    for i in range(15):  # a scanner
        t.record(unrouted.name, unrouted.target, "GET", f"/wp-admin/x{i}.php", 404)
    t.record(unrouted.name, unrouted.target, "POST", "/login", 405)
    t.record(unrouted.name, unrouted.target, "GET", "/users/1", 200)
    t.record(unrouted.name, unrouted.target, "GET", "/users/2", 404)  # a missing user
    status = t.snapshot(holder.current)
    assert [e["endpoint"] for e in status["backlog"]] == ["GET /users/{id}"]
    assert status["backlog"][0]["status_classes"] == ["2xx", "404/405"]
    assert status["backlog_total"] == 1
    from strangler.progress.status import backlog_model

    state = t.merged(holder.current)
    full = backlog_model(state, holder.current, clock.t, everything=True)
    assert full["not_found_total"] == 16
    assert len(full["endpoints"]) == 17
    assert backlog_model(state, holder.current, clock.t)["total"] == 1


IGNORING = (
    MOVED
    + """
progress:
  ignore: ["/static/**", /health, "/*.ico"]
  idle_after: 35d
"""
)


def test_ignore_globs_and_idle_after_come_from_the_config() -> None:
    clock = Clock()
    holder = SnapshotHolder(snap_of(MOVED))
    t = ProgressTracker(holder, clock=clock)
    unrouted = holder.current.unrouted
    t.record(unrouted.name, unrouted.target, "GET", "/static/app.039bac4c.js", 200)
    assert [e["endpoint"] for e in t.snapshot(holder.current)["backlog"]] == [
        "GET /static/app.{hash}.js"
    ]
    holder.swap(snap_of(IGNORING))  # a reload drops what is now ignored
    for path in ("/static/js/app.1234abcd.js", "/health", "/favicon.ico", "/reports/q1"):
        t.record(unrouted.name, unrouted.target, "GET", path, 200)
    status = t.snapshot(holder.current)
    assert [e["endpoint"] for e in status["backlog"]] == ["GET /reports/q1"]
    assert status["idle_after_days"] == 35
    assert t.idle_after == 35 * DAY


@pytest.mark.parametrize(
    ("progress", "problem"),
    [
        (
            "{ignore: /static}",
            "m.yaml:7: progress.ignore must be a list, got '/static' (hint: write a list",
        ),
        (
            "{ignore: [static/**]}",
            "m.yaml:7: progress.ignore entry: 'static/**' must start with '/' (hint:",
        ),
        ("{idle_after: 2m}", "m.yaml:7: progress.idle_after must be from 1h to 400d, got 120s"),
        ("{idle_after: soon}", "m.yaml:7: progress.idle_after: expected a duration like '14d'"),
        ("{idle: 14d}", "m.yaml:7: unknown key 'idle' in progress"),
    ],
)
def test_progress_keys_are_validated_with_file_and_line(progress: str, problem: str) -> None:
    from strangler.config import load_config_text as load

    text = MOVED.strip() + f"\nprogress: {progress}\n"
    with pytest.raises(ConfigError) as err:
        load(text, "m.yaml")
    assert problem in str(err.value)


TOKEN = "s3cret-token-value"


def reset_world(tmp_path: Path) -> tuple[web.Application, ProgressTracker, Clock, AuditLog]:
    clock = Clock()
    holder = SnapshotHolder(snap_of())
    t = moved_an_hour_ago(clock, holder)
    other = ProgressTracker(holder, worker="1", clock=clock)
    send(other, holder.current.routes[1], "legacy", 5)  # orders, in a peer's file
    other.save(other.state_file(tmp_path))
    audit = AuditLog.in_dir(tmp_path)
    app = web.Application()
    add_progress_routes(app, t, holder, tmp_path, token=Secret(TOKEN), audit=audit)
    return app, t, clock, audit


async def test_reset_needs_the_token_and_starts_a_route_afresh_for_every_worker(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    app, t, clock, audit = reset_world(tmp_path)
    client = await aiohttp_client(app)
    assert (await client.post("/api/progress/reset", json={})).status == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await client.post("/api/progress/reset", json={}, headers=wrong)).status == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    resp = await client.post("/api/progress/reset", json={"route": "nope"}, headers=auth)
    assert resp.status == 404
    assert "no route named 'nope'" in (await resp.json())["error"]
    resp = await client.post("/api/progress/reset", json={"route": "customers"}, headers=auth)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["reset"] == ["customers"]
    entry = audit.tail(1)[0]
    assert (entry["action"], entry["target"], entry["before"]) == (
        "progress-reset",
        "customers",
        {"requests": 100},
    )
    assert TOKEN not in audit.path.read_text()
    clock.t += 120  # the reset's minute is over
    send(t, app_route(t, 0), "new", 2)
    body = await (await client.get("/api/status")).json()
    customers, orders = body["routes"]
    assert customers["windows"]["all"] == {"requests": 2, "new": 2, "legacy": 0, "new_share": 1.0}
    assert customers["windows"]["24h"]["requests"] == 2
    assert customers["reset_at"] is not None
    assert orders["windows"]["all"]["requests"] == 5  # untouched
    # A reset of every route, then the history still has what happened.
    resp = await client.post("/api/progress/reset", headers=auth)
    assert resp.status == 200
    body = await (await client.get("/api/status")).json()
    assert body["overall"]["windows"]["all"]["requests"] == 0
    history = await (await client.get("/api/progress/history")).json()
    assert sum(p["requests"] for p in history["points"]) == 107


def app_route(t: ProgressTracker, i: int) -> CompiledRoute:
    assert t.holder is not None
    return t.holder.current.routes[i]


async def test_reset_without_a_configured_token_is_refused(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    clock = Clock()
    holder = SnapshotHolder(snap_of())
    app = web.Application()
    add_progress_routes(app, ProgressTracker(holder, clock=clock), holder, tmp_path)
    client = await aiohttp_client(app)
    resp = await client.post("/api/progress/reset", headers={"Authorization": "Bearer x"})
    assert resp.status == 403


async def test_cli_status_defaults_to_the_last_hour_and_reset_goes_through_the_api(
    aiohttp_server: AiohttpServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, _t, _clock, audit = reset_world(tmp_path)
    url = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    assert await asyncio.to_thread(functools.partial(status_main, url, color=False)) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("Migration progress (last hour): 91.7% of 60 requests")
    assert "  customers  team-crm     [████████████████████]  100% new  55 req" in out
    run = functools.partial(status_main, url, color=False, window="all")
    assert await asyncio.to_thread(run) == 0
    assert "   55% new  100 req" in capsys.readouterr().out
    assert await asyncio.to_thread(reset_main, url, "customers", None) == 1
    assert "needs the admin token: set STRANGLER_ADMIN_TOKEN" in capsys.readouterr().err
    assert await asyncio.to_thread(reset_main, url, "customers", TOKEN) == 0
    assert "Progress of route 'customers' reset at " in capsys.readouterr().out
    assert audit.tail(1)[0]["target"] == "customers"


def test_peer_files_are_parsed_again_only_when_they_change(tmp_path: Path) -> None:
    from strangler.progress.tracker import PeerCache, read_peers

    clock = Clock()
    holder = SnapshotHolder(snap_of())
    peer = ProgressTracker(holder, worker="1", clock=clock)
    send(peer, holder.current.routes[1], "legacy", 3)
    peer.save(peer.state_file(tmp_path))
    cache: PeerCache = {}
    mine = tmp_path / "progress-0.json"
    (first,), _ = read_peers(tmp_path, mine, holder.current, cache)
    (again,), _ = read_peers(tmp_path, mine, holder.current, cache)
    assert again is first  # unchanged: not parsed again
    send(peer, holder.current.routes[1], "legacy", 2)
    peer.save(peer.state_file(tmp_path))
    (changed,), _ = read_peers(tmp_path, mine, holder.current, cache)
    assert changed is not first
    assert changed.routes["orders"].legacy == 5
    holder.swap(snap_of(IGNORING))  # another snapshot: attributed afresh
    (reattributed,), _ = read_peers(tmp_path, mine, holder.current, cache)
    assert reattributed is not changed
