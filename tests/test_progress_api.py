"""The admin progress endpoints through a real aiohttp app: merged across workers,
read-only, with an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from strangler.admin.progress_api import add_progress_routes
from strangler.config import load_config_text
from strangler.metrics import Metrics
from strangler.progress import ProgressTracker
from strangler.runtime import SnapshotHolder, compile_snapshot
from tests.test_progress import CONFIG, IDLE, T0, Clock

World = tuple[web.Application, ProgressTracker, SnapshotHolder, Clock]


def make_world(tmp_path: Path) -> World:
    """An admin app with progress routes over two workers' counters: worker 0 live,
    worker 1 in a saved file. Merged: 9 requests, 4 answered by billing."""
    clock = Clock()
    holder = SnapshotHolder(compile_snapshot(load_config_text(CONFIG), Metrics()))
    snap = holder.current
    tracker = ProgressTracker(holder, worker="0", clock=clock)
    invoices, customers = snap.routes
    for _ in range(3):
        tracker.record(invoices.name, invoices.target, "GET", "/api/invoices/1", 200)
    tracker.record(customers.name, customers.target, "GET", "/api/customers", 200)
    for path in ("/users/1", "/users/2", "/old-home"):
        tracker.record(snap.unrouted.name, snap.unrouted.target, "GET", path, 200)
    # A second worker's saved file: the API must add it in.
    other = ProgressTracker(holder, worker="1", clock=clock)
    other.record(invoices.name, invoices.target, "GET", "/api/invoices/2", 200)
    other.record(snap.unrouted.name, snap.unrouted.target, "GET", "/users/3", 200)
    other.save(other.state_file(tmp_path))
    app = web.Application()
    add_progress_routes(app, tracker, holder, tmp_path)
    return app, tracker, holder, clock


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


async def test_status_is_merged_across_workers(
    aiohttp_client: AiohttpClient,
    world: World,
) -> None:
    app, _tracker, holder, _clock = world
    client = await aiohttp_client(app)
    resp = await client.get("/api/status")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["version"] == holder.current.version
    overall = body["overall"]
    assert overall.pop("windows")["1h"]["requests"] == 9
    assert overall.pop("coverage")["endpoints_seen"] == 2
    assert overall == {
        "requests": 9,
        "new": 4,
        "legacy": 5,
        "migrated_ratio": pytest.approx(4 / 9, abs=1e-6),
        "routes_total": 2,
        "routes_migrated": 1,
    }
    assert [(r["name"], r["new"], r["legacy"]) for r in body["routes"]] == [
        ("invoices-read", 4, 0),
        ("customers", 0, 1),
    ]
    assert [(b["endpoint"], b["requests"]) for b in body["backlog"]] == [
        ("GET /users/{id}", 3),
        ("GET /old-home", 1),
    ]
    assert body["backlog"][0]["share"] == pytest.approx(3 / 9, abs=1e-6)
    assert body["decommission"] == []


async def test_backlog_with_and_without_limit(
    aiohttp_client: AiohttpClient,
    world: World,
) -> None:
    client = await aiohttp_client(world[0])
    full = await (await client.get("/api/backlog")).json()
    assert full["total"] == 2
    assert full["requests"] == 9
    assert [e["endpoint"] for e in full["endpoints"]] == ["GET /users/{id}", "GET /old-home"]
    one = await (await client.get("/api/backlog?limit=1")).json()
    assert [e["endpoint"] for e in one["endpoints"]] == ["GET /users/{id}"]
    for bad in ("x", "-1", "100001"):
        resp = await client.get(f"/api/backlog?limit={bad}")
        assert resp.status == 400
        assert "limit must be an integer" in (await resp.json())["error"]


async def test_decommission_after_the_idle_period(
    aiohttp_client: AiohttpClient,
    world: World,
) -> None:
    app, _tracker, _holder, clock = world
    client = await aiohttp_client(app)
    assert (await (await client.get("/api/decommission")).json())["decommission"] == []
    clock.t = T0 + IDLE + 86400
    body = await (await client.get("/api/decommission")).json()
    assert body["idle_after_days"] == 14
    assert [(c["kind"], c["name"]) for c in body["decommission"]] == [
        ("route", "customers"),
        ("endpoint", "GET /old-home"),
        ("endpoint", "GET /users/{id}"),
    ]
    assert body["decommission"][0]["idle_days"] == 15.0


async def test_progress_endpoints_are_read_only(
    aiohttp_client: AiohttpClient,
    world: World,
) -> None:
    client = await aiohttp_client(world[0])
    for path in ("/api/status", "/api/backlog", "/api/decommission"):
        assert (await client.post(path)).status == 405
