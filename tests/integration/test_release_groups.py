"""A canary group moves as one, end to end: real upstreams, a real proxy, the admin API
and the CLI.

The group ``orders`` has three routes sharing sticky cohorts. The headline test makes
one route's new side fail until its SLO guard trips, then checks that no user is
answered by both sides across the group's routes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from strangler.cli import main as cli_main
from tests.conftest import MakeProxy, RunningProxy, Upstream
from tests.integration.test_redis_replicas import PROPAGATION, until
from tests.serve_support import Serving, free_port, serve
from tests.test_redis_store import RedisServer, running_redis

TOKEN = "group-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ORDERS = ["orders-read", "orders-list", "orders-create"]
USERS = [f"user-{i}" for i in range(120)]


@dataclass
class Flaky:
    """A new service for one route: answers like the others, 500 while ``failing``."""

    url: str
    failing: bool = False


@pytest.fixture
async def flaky(aiohttp_server: AiohttpServer) -> Flaky:
    state = Flaky("")

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"served_by": "new"}, status=500 if state.failing else 200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = await aiohttp_server(app)
    state.url = str(server.make_url("")).rstrip("/")
    return state


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    workdir = tmp_path / "redis"
    workdir.mkdir()
    with running_redis(workdir) as server:
        yield server


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STRANGLER_ADMIN_TOKEN", TOKEN)
    return TOKEN


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def group_config(legacy: Upstream, new: Upstream, flaky: Flaky, percent: str = "50%") -> str:
    canary = f"percent: {percent}, sticky: header:X-User-Id, group: orders"
    return f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
access_log: {{format: off}}
upstreams:
  legacy: {legacy.url}
  orders: {new.url}
  orders-writes: {flaky.url}
routes:
  - {{name: orders-read, owner: t, match: {{path_prefix: /orders/read}}, to: legacy,
     canary: {{to: orders, {canary}}}}}
  - {{name: orders-list, owner: t, match: {{path_prefix: /orders/list}}, to: legacy,
     canary: {{to: orders, {canary}}}}}
  - {{name: orders-create, owner: t, match: {{path_prefix: /orders/create}}, to: legacy,
     canary: {{to: orders-writes, {canary}}}, fallback: false,
     slo: {{error_rate: 10%, window: 30s, min_requests: 20}}}}
  - {{name: invoices, owner: t, match: {{path_prefix: /inv}}, to: orders}}
"""


PATHS = {
    "orders-read": ("GET", "/orders/read/1"),
    "orders-list": ("GET", "/orders/list"),
    "orders-create": ("POST", "/orders/create"),
}


async def side(s: aiohttp.ClientSession, proxy: RunningProxy, route: str, user: str) -> str:
    method, path = PATHS[route]
    async with s.request(method, proxy.url + path, headers={"X-User-Id": user}, data=b"{}") as r:
        return str((await r.json())["served_by"])


async def sides(s: aiohttp.ClientSession, proxy: RunningProxy) -> dict[str, set[str]]:
    """Each user's answering sides over every route of the group."""

    async def one(user: str) -> tuple[str, set[str]]:
        return user, {await side(s, proxy, route, user) for route in ORDERS}

    return dict(await asyncio.gather(*(one(u) for u in USERS)))


async def admin(
    s: aiohttp.ClientSession, proxy: RunningProxy, method: str, path: str, **kw: object
) -> tuple[int, dict[str, Any]]:
    async with s.request(method, proxy.admin_url + path, **kw) as r:  # type: ignore[arg-type]
        body = await r.json() if r.content_type == "application/json" else {"text": await r.text()}
        return r.status, body


async def statuses(s: aiohttp.ClientSession, proxy: RunningProxy) -> dict[str, str]:
    _, body = await admin(s, proxy, "GET", "/api/routes")
    routes = body["routes"]
    assert isinstance(routes, list)
    return {str(r["name"]): str(r["status"]) for r in routes}


async def test_a_guard_trip_on_one_route_rolls_back_the_whole_group(
    legacy: Upstream,
    newsvc: Upstream,
    flaky: Flaky,
    make_proxy: MakeProxy,
    session: aiohttp.ClientSession,
) -> None:
    proxy = await make_proxy(group_config(legacy, newsvc, flaky))
    before = await sides(session, proxy)
    assert all(len(seen) == 1 for seen in before.values()), "a group shares one cohort"
    on_new = [u for u, seen in before.items() if seen == {"new"}]
    assert 20 < len(on_new) < 100  # both sides have users: the test can tell them apart

    flaky.failing = True  # the new side of orders-create fails until its guard trips
    for _ in range(50):  # each round sends every user's write; bounded
        await asyncio.gather(*(side(session, proxy, "orders-create", u) for u in USERS))
        if (await statuses(session, proxy))["orders-create"] == "guard-tripped":
            break
    else:
        raise AssertionError("the guard of orders-create never tripped")
    flaky.failing = False

    after = await sides(session, proxy)
    split = {u: seen for u, seen in after.items() if len(seen) != 1}
    assert split == {}, f"users answered by both sides: {split}"
    assert all(seen == {"legacy"} for seen in after.values())
    now = await statuses(session, proxy)
    assert {r: now[r] for r in ORDERS} == dict.fromkeys(ORDERS, "guard-tripped")
    assert now["invoices"] == "active"  # not in the group

    _, body = await admin(session, proxy, "GET", "/api/events")
    events = body["events"]
    assert isinstance(events, list)
    assert sorted(e["target"] for e in events) == sorted(ORDERS)
    for e in events:
        assert (e["who"], e["action"], e["group"]) == ("guard", "guard-trip", "orders")
        assert e["routes"] == ORDERS
        assert "orders-create" in e["reason"]
        assert "error rate" in e["reason"]
    _, groups = await admin(session, proxy, "GET", "/api/groups")
    assert groups == {"groups": [{"name": "orders", "routes": ORDERS, "status": "guard-tripped"}]}


async def test_admin_writes_move_the_group_unless_only_route(
    legacy: Upstream,
    newsvc: Upstream,
    flaky: Flaky,
    make_proxy: MakeProxy,
    session: aiohttp.ClientSession,
    token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = await make_proxy(group_config(legacy, newsvc, flaky, percent="100%"))
    assert {frozenset(s) for s in (await sides(session, proxy)).values()} == {frozenset({"new"})}

    caplog.set_level(logging.INFO, logger="strangler.admin")
    status, body = await admin(
        session,
        proxy,
        "POST",
        "/api/routes/orders-create/rollback",
        json={"reason": "orders 500s\nafter deploy 42"},
        headers=AUTH,
    )
    assert status == 200, body
    assert body["group"] == "orders"
    assert body["routes"] == ORDERS
    assert body["reason"] == "orders 500s after deploy 42"  # folded onto one line
    assert body["lines"] == [
        "group orders (orders-read, orders-list, orders-create): canary 100% -> 0% "
        '(rolled back) by admin@127.0.0.1, reason: "orders 500s after deploy 42"'
    ]
    changes = body["changes"]
    assert isinstance(changes, list)
    assert [(c["route"], c["new_percent_before"], c["new_percent_after"]) for c in changes] == [
        (r, 100, 0) for r in ORDERS
    ]
    assert all(seen == {"legacy"} for seen in (await sides(session, proxy)).values())
    logged = [r.getMessage() for r in caplog.records if r.name == "strangler.admin"]
    assert logged == ["admin write: " + str(body["lines"][0])]
    assert TOKEN not in caplog.text

    # --only-route: one route back on its own; the group is split on purpose, and says so.
    status, body = await admin(
        session,
        proxy,
        "POST",
        "/api/routes/orders-read/enable",
        json={"only_route": True},
        headers=AUTH,
    )
    assert status == 200, body
    assert body["detached"] == "orders"
    assert body["lines"] == [
        "orders-read: canary 0% -> 100% (enabled; this route only, detached from group orders)"
        " by admin@127.0.0.1"
    ]
    now = await statuses(session, proxy)
    assert [now[r] for r in ORDERS] == ["active", "rolled-back", "rolled-back"]
    _, groups = await admin(session, proxy, "GET", "/api/groups")
    assert groups["groups"] == [{"name": "orders", "routes": ORDERS, "status": "split"}]
    _, events = await admin(session, proxy, "GET", "/api/events")
    last = events["events"][-1]
    assert (last["target"], last["detached"]) == ("orders-read", "orders")

    # The group by name, then every route; percent on a grouped route sets the group.
    status, body = await admin(session, proxy, "POST", "/api/groups/orders/enable", headers=AUTH)
    assert status == 200, body
    assert [c["changed"] for c in body["changes"]] == [False, True, True]
    status, body = await admin(
        session, proxy, "POST", "/api/routes/orders-list/percent", json={"percent": 0}, headers=AUTH
    )
    assert status == 200, body
    assert body["lines"] == [
        "group orders (orders-read, orders-list, orders-create): canary 100% -> 0% "
        "(runtime override; file says 100%) by admin@127.0.0.1"
    ]
    assert all(seen == {"legacy"} for seen in (await sides(session, proxy)).values())
    status, body = await admin(session, proxy, "POST", "/api/rollback", headers=AUTH)
    assert status == 200, body
    assert body["lines"] == [  # every route: only those it changed
        "invoices: new side 100% -> 0% (rolled back) by admin@127.0.0.1",
        "orders-create: canary 0% -> 0% (rolled back) by admin@127.0.0.1",
        "orders-list: canary 0% -> 0% (rolled back) by admin@127.0.0.1",
        "orders-read: canary 0% -> 0% (rolled back) by admin@127.0.0.1",
    ]
    status, body = await admin(session, proxy, "POST", "/api/enable", json={}, headers=AUTH)
    assert status == 200, body
    status, body = await admin(
        session, proxy, "POST", "/api/groups/orders/percent", json={"percent": None}, headers=AUTH
    )
    assert status == 200, body
    assert {frozenset(s) for s in (await sides(session, proxy)).values()} == {frozenset({"new"})}


@pytest.mark.parametrize(
    ("path", "body", "status", "text"),
    [
        ("/api/groups/nope/rollback", None, 404, "no canary group named 'nope'"),
        ("/api/routes/orders-read/rollback", [1], 400, "send a JSON object"),
        ("/api/routes/orders-read/rollback", {"only": True}, 400, "unknown field 'only'"),
        ("/api/routes/orders-read/rollback", {"only_route": "yes"}, 400, "true or false"),
        ("/api/groups/orders/rollback", {"only_route": True}, 400, "unknown field"),
        ("/api/rollback", {"reason": 7}, 400, "reason must be a string"),
        ("/api/enable", {"reason": "x" * 501}, 400, "longer than 500"),
        ("/api/groups/orders/percent", {"reason": "r"}, 400, '{"percent": "10%"}'),
        ("/api/routes/invoices/percent", {"percent": 5}, 409, "has no canary"),
    ],
)
async def test_bad_writes_get_one_clear_line(
    legacy: Upstream,
    newsvc: Upstream,
    flaky: Flaky,
    make_proxy: MakeProxy,
    session: aiohttp.ClientSession,
    token: str,
    path: str,
    body: object,
    status: int,
    text: str,
) -> None:
    proxy = await make_proxy(group_config(legacy, newsvc, flaky))
    got, answer = await admin(session, proxy, "POST", path, json=body, headers=AUTH)
    assert got == status
    assert text in str(answer["text"])
    assert all(s == "active" for s in (await statuses(session, proxy)).values())
    got, _ = await admin(session, proxy, "POST", "/api/groups/orders/rollback")
    assert got == 401  # group writes need the token too


async def test_cli_group_writes_reasons_json_and_the_routes_table(
    legacy: Upstream,
    newsvc: Upstream,
    flaky: Flaky,
    make_proxy: MakeProxy,
    session: aiohttp.ClientSession,
    token: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy = await make_proxy(group_config(legacy, newsvc, flaky, percent="10%"))
    adm = ["--admin", proxy.admin_url]

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(cli_main, [*argv, *adm])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = await cli("set", "orders-read", "--percent", "20%", "--reason", "ramp")
    assert code == 0
    assert out.splitlines() == [
        "group orders (orders-read, orders-list, orders-create): canary 10% -> 20% "
        '(runtime override; file says 10%) by admin@127.0.0.1, reason: "ramp"'
    ]
    code, out, _ = await cli("routes")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split()[:2] == ["ROUTE", "GROUP"]
    names = [row.split()[0] for row in rows[1:]]
    assert names == [*ORDERS, "invoices"]  # the group stands together
    assert all("20% (runtime; file says 10%)" in row for row in rows[1:4])
    assert "(runtime" not in rows[4]

    code, out, _ = await cli("rollback", "orders-list", "--only-route", "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["detached"] == "orders"
    assert [c["route"] for c in answer["changes"]] == ["orders-list"]
    code, out, _ = await cli("routes")
    assert [row.split()[1] for row in out.splitlines()[1:4]] == ["orders"] * 3
    assert all("orders (split)" in row for row in out.splitlines()[1:4])
    code, out, _ = await cli("rollback", "--group", "orders", "--reason", "incident 9")
    assert code == 0
    assert out.splitlines() == [  # the routes differed before: one line each
        "orders-read: canary 20% -> 0% (rolled back; group orders moved as one) "
        'by admin@127.0.0.1, reason: "incident 9"',
        "orders-list: canary 0% -> 0% (rolled back; no change; group orders moved as one) "
        'by admin@127.0.0.1, reason: "incident 9"',
        "orders-create: canary 20% -> 0% (rolled back; group orders moved as one) "
        'by admin@127.0.0.1, reason: "incident 9"',
    ]
    code, out, _ = await cli("enable", "--all")
    assert code == 0
    assert [line.split(":")[0] for line in out.splitlines()] == sorted(ORDERS)  # the changed
    code, out, _ = await cli("set", "--group", "orders", "--reset")
    assert code == 0
    assert "runtime override cleared; file says 10%" in out
    _, events = await admin(session, proxy, "GET", "/api/events")
    reasons = [(e["action"], e["target"], e.get("reason")) for e in events["events"]]
    assert ("rollback", "orders-create", "incident 9") in reasons
    assert ("set-percent", "orders-list", "ramp") in reasons

    for argv, message in [
        (["rollback"], "name one ROUTE or --group NAME, or --all"),
        (["rollback", "orders-read", "--all"], "name one ROUTE"),
        (["enable", "--group", "orders", "--only-route"], "--only-route goes with a ROUTE"),
        (["set", "--percent", "5%"], "name one ROUTE or --group NAME\n"),
    ]:
        code, _, err = await cli(*argv)
        assert code == 2
        assert message in err
    capsys.readouterr()
    code, _, err = await cli("rollback", "--group", "nope")
    assert code == 1
    assert "no canary group named 'nope'" in err


async def test_a_group_rollback_through_one_replica_reaches_the_other_whole(
    tmp_path: Path,
    legacy: Upstream,
    newsvc: Upstream,
    flaky: Flaky,
    redis: RedisServer,
    token: str,
    session: aiohttp.ClientSession,
) -> None:
    """Two ``strangler serve`` processes sharing their state through a real Redis: a
    rollback of one grouped route through A rolls the group back on B too."""
    backend = f"""
state:
  file_poll: 500ms
  backend: redis
  redis: {{url: '{redis.url}', key_prefix: 'groups-test:', resync: 5s}}
"""
    replicas = []
    async with AsyncExitStack() as stack:
        for name in ("a", "b"):
            port, admin_port = free_port(), free_port()
            config = tmp_path / f"{name}.yaml"
            config.write_text(
                group_config(legacy, newsvc, flaky, percent="100%")
                .replace("listen: 127.0.0.1:0", f"listen: 127.0.0.1:{port}", 1)
                .replace("{listen: 127.0.0.1:0}", f"{{listen: 127.0.0.1:{admin_port}}}")
                + backend
            )
            state = ("--state-dir", str(tmp_path / name))
            replicas.append(await stack.enter_async_context(serve("--config", str(config), *state)))
        a, b = replicas

        async def group_on(r: Serving) -> set[str]:
            seen = set()
            for route in ORDERS:
                method, path = PATHS[route]
                async with session.request(
                    method, r.url + path, headers={"X-User-Id": "u1"}, data=b"{}"
                ) as resp:
                    seen.add(str((await resp.json())["served_by"]))
            return seen

        assert await group_on(b) == {"new"}
        async with session.post(
            a.admin_url + "/api/routes/orders-read/rollback", headers=AUTH
        ) as resp:
            assert resp.status == 200, await resp.text()

        async def b_rolled_back() -> bool:
            async with session.get(b.admin_url + "/api/groups") as resp:
                (group,) = (await resp.json())["groups"]
                assert group["status"] != "split", group  # never half a group
                return bool(group["status"] == "rolled-back")

        await until(b_rolled_back, PROPAGATION, "B honours A's group rollback")
        assert await group_on(b) == {"legacy"}
