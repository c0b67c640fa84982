"""Who answered and why, through a real proxy: Proxy-Status on strangler's own answers,
the debug header's reasons, mistaken overrides answered 400, and the request id from
the client to the upstream and the access log."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from tests.conftest import MakeProxy, RunningProxy, Upstream
from tests.integration.test_release import AUTH, admin, wait_status

TOKEN = AUTH["Authorization"].removeprefix("Bearer ")


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STRANGLER_ADMIN_TOKEN", TOKEN)
    return TOKEN


def config(legacy: Upstream, new: Upstream, dead_port: int, *, top: str = "", routes: str) -> str:
    return f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
{top}
upstreams:
  legacy: {legacy.url}
  billing: {new.url}
  dead: http://127.0.0.1:{dead_port}
routes:
{routes}
"""


Start = Callable[..., Awaitable[RunningProxy]]


@pytest.fixture
def start(legacy: Upstream, newsvc: Upstream, unused_tcp_port: int, make_proxy: MakeProxy) -> Start:
    """A proxy over legacy, billing (newsvc) and dead (nothing listening)."""

    async def make(*, top: str = "", routes: str = "") -> RunningProxy:
        return await make_proxy(config(legacy, newsvc, unused_tcp_port, top=top, routes=routes))

    return make


async def explained(client: aiohttp.ClientSession, url: str, **headers: str) -> str | None:
    async with client.get(url, headers=headers) as resp:
        await resp.read()
        return resp.headers.get("X-Strangler-Route")


# ------------------------------------------------------------------------ Proxy-Status


async def test_own_answers_carry_proxy_status_and_the_request_id(
    start: Start,
) -> None:
    proxy = await start(
        top="limits: {max_body_bytes: 10}",
        routes="  - {name: d, owner: t, match: {path_prefix: /d}, to: dead, fallback: false}",
    )
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + "/d", headers={"X-Request-Id": "r-1"}) as resp:
            assert resp.status == 502
            assert await resp.text() == "upstream 'dead' refused the connection (request id r-1)\n"
            assert resp.headers["Proxy-Status"] == (
                "strangler; error=connection_refused; details=\"upstream 'dead'\""
            )
        async with s.post(proxy.url + "/x", data=b"x" * 11) as resp:
            assert resp.status == 413
            assert resp.headers["Proxy-Status"] == (
                'strangler; error=http_request_denied; details="limits.max_body_bytes"'
            )
        # The application's own 502 carries none: it can be told apart.
        async with s.get(proxy.url + "/status/502") as resp:
            assert resp.status == 502
            assert "Proxy-Status" not in resp.headers


# ------------------------------------------------------------------------ debug header

ROUTES = """
  - {name: inv, owner: t, match: {path_prefix: /inv}, to: legacy,
     canary: {to: billing, percent: 50%, sticky: 'header:X-User'}, overrides: true}
  - {name: fb, owner: t, match: {path_prefix: /fb}, to: dead}
  - {name: quiet, owner: t, match: {path_prefix: /quiet}, to: billing, debug_headers: off}
  - {name: st, owner: t, match: {path_prefix: /status}, to: billing, fallback: false,
     overrides: true, slo: {error_rate: 10%, window: 30s, min_requests: 5}}
"""


async def test_debug_header_names_route_backend_and_reason(
    start: Start,
    client: aiohttp.ClientSession,
    token: str,
) -> None:
    proxy = await start(top="debug_headers: on", routes=ROUTES)
    sticky = await explained(client, proxy.url + "/inv", **{"X-User": "u1"})
    assert sticky is not None
    assert re.fullmatch(r"inv; backend=(legacy; reason=primary|billing; reason=canary); "
                        r"cohort=\d+", sticky)  # fmt: skip
    assert await explained(client, proxy.url + "/inv", **{"X-Strangler-Backend": "billing"}) == (
        "inv; backend=billing; reason=override"
    )
    # the new side is down: the primary answers, and says so
    assert await explained(client, proxy.url + "/fb") == "fb; backend=legacy; reason=fallback"
    assert await explained(client, proxy.url + "/quiet") is None  # the route's own setting
    assert await explained(client, proxy.url + "/other") == (
        "(unrouted); backend=legacy; reason=primary"
    )
    # a rolled-back route: killed, even for a valid override
    status, _ = await admin(client, proxy, "POST", "/api/routes/inv/rollback", headers=AUTH)
    assert status == 200
    assert await explained(client, proxy.url + "/inv", **{"X-Strangler-Backend": "billing"}) == (
        "inv; backend=legacy; reason=killed"
    )
    # a tripped guard: an override goes to the primary too, and the header says why
    for _ in range(10):
        async with client.get(proxy.url + "/status/500") as resp:
            assert resp.headers["X-Strangler-Route"] == "st; backend=billing; reason=primary"
    await wait_status(client, proxy, "st", "guard-tripped")
    assert await explained(
        client, proxy.url + "/status/200", **{"X-Strangler-Backend": "billing"}
    ) == ("st; backend=legacy; reason=guard")


async def test_debug_header_only_for_overrides(
    start: Start,
    client: aiohttp.ClientSession,
) -> None:
    proxy = await start(top="debug_headers: overrides", routes=ROUTES)
    assert await explained(client, proxy.url + "/inv", **{"X-User": "u1"}) is None
    assert await explained(client, proxy.url + "/fb") is None  # no overrides on the route
    assert await explained(client, proxy.url + "/inv", **{"X-Strangler-Backend": "legacy"}) == (
        "inv; backend=legacy; reason=override"
    )


async def test_debug_headers_off_by_default(
    start: Start,
    client: aiohttp.ClientSession,
) -> None:
    proxy = await start(routes=ROUTES)
    for route in proxy.server.holder.current.routes:
        assert route.explain is None
    assert await explained(client, proxy.url + "/inv", **{"X-Strangler-Backend": "legacy"}) is None


# ------------------------------------------------------------------------ overrides


def rejected(proxy: RunningProxy, route: str) -> float | None:
    labels = {"route": route, "reason": "rejected"}
    return proxy.server.metrics.registry.get_sample_value(
        "strangler_release_decisions_total", labels
    )


async def test_a_mistaken_override_is_answered_400_and_counted(
    start: Start, legacy: Upstream, newsvc: Upstream, client: aiohttp.ClientSession
) -> None:
    proxy = await start(routes=ROUTES)
    headers = {"X-Strangler-Backend": "biling", "X-Request-Id": "typo-1"}
    async with client.get(proxy.url + "/inv", headers=headers) as resp:
        assert resp.status == 400
        assert await resp.text() == (
            "header X-Strangler-Backend: 'biling' is not an upstream this route allows "
            "(billing, legacy) (request id typo-1)\n"
        )
        assert resp.headers["Proxy-Status"].startswith("strangler; error=http_request_error;")
    assert legacy.recorder.seen == []
    assert newsvc.recorder.seen == []
    assert rejected(proxy, "inv") == 1
    # a cookie naming another route's upstream is not a mistake here: ignored
    async with client.get(proxy.url + "/inv", cookies={"strangler_backend": "dead"}) as resp:
        assert resp.status == 200
    assert rejected(proxy, "inv") == 1


async def test_a_mistaken_override_from_outside_the_networks_is_ignored(
    start: Start,
    client: aiohttp.ClientSession,
) -> None:
    routes = (
        "  - {name: inv, owner: t, match: {path_prefix: /inv}, to: legacy,"
        " canary: {to: billing, percent: 0%}, overrides: {networks: [10.0.0.0/8]}}"
    )
    proxy = await start(routes=routes)
    async with client.get(proxy.url + "/inv", headers={"X-Strangler-Backend": "biling"}) as resp:
        assert resp.status == 200
        assert (await resp.json())["served_by"] == "legacy"
    assert not rejected(proxy, "inv")


# ------------------------------------------------------------------------ request id


async def test_request_id_round_trip(
    legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(
        f"listen: 127.0.0.1:0\nadmin: {{listen: 127.0.0.1:0}}\nupstreams:\n  legacy: {legacy.url}\n"
    )
    sent = [
        {"X-Request-Id": "client-id-42"},  # kept
        {},  # made
        {"X-Request-Id": 'bad id "injected"'},  # replaced: spaces and quotes
        {"X-Request-Id": "x" * 129},  # replaced: too long
    ]
    for headers in sent:
        async with client.get(proxy.url + "/r", headers=headers) as resp:
            assert resp.status == 200
    seen = [legacy.recorder.header(i, "X-Request-Id") for i in range(len(sent))]
    assert seen[0] == ["client-id-42"]
    made = [ids[0] for ids in seen[1:]]
    assert all(len(ids) == 1 for ids in seen[1:])
    for rid in made:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]+", rid), rid
    assert len(set(made)) == 3
    assert len({r.split("-")[0] for r in made}) == 1  # one per-process prefix
    logged = [line["request_id"] for line in proxy.access_lines()]
    assert logged == ["client-id-42", *made]


# ------------------------------------------------------------------------ config


def test_debug_headers_config_values() -> None:
    from tests.test_config_validate import LEGACY, load, one_problem, routes_yaml

    assert load(LEGACY + "debug_headers: overrides\n").debug_headers == "overrides"
    assert load(LEGACY + "debug_headers: true\n").debug_headers == "on"
    assert load(LEGACY).debug_headers == "off"
    route = load(routes_yaml("{name: a, owner: t, match: {}, to: legacy, debug_headers: on}"))
    assert route.routes[0].debug_headers == "on"
    assert one_problem(LEGACY + "debug_headers: always\n") == (
        "m.yaml:2: debug_headers must be on (true), off (false) or overrides, got 'always' "
        "(hint: overrides: only for requests that carry a valid override header or cookie)"
    )


def test_request_id_doctests() -> None:
    import doctest

    from strangler import requestid

    assert doctest.testmod(requestid).failed == 0


@pytest.mark.parametrize(
    ("stage", "kind", "expected"),
    [
        ("connect", "refused", "connection_refused"),
        ("connect", "timeout", "connection_timeout"),
        ("send", "reset", "connection_terminated"),
        ("send", "timeout", "connection_write_timeout"),
        ("response_headers", "reset", "connection_terminated"),
        ("response_headers", "timeout", "http_response_timeout"),
        ("response_headers", "protocol", "http_protocol_error"),
        ("response_body", "protocol", "http_response_incomplete"),
        ("response_body", "timeout", "connection_read_timeout"),
    ],
)
def test_proxy_status_error_types(stage: str, kind: str, expected: str) -> None:
    from strangler.errors import ForwardError, ForwardErrorKind, ForwardStage

    e = ForwardError("billing", ForwardStage(stage), ForwardErrorKind(kind))
    assert e.proxy_status == expected


async def test_overrides_mode_explains_a_killed_route_to_the_tester(
    start: Start, client: aiohttp.ClientSession, token: str
) -> None:
    proxy = await start(top="debug_headers: overrides", routes=ROUTES)
    status, _ = await admin(client, proxy, "POST", "/api/routes/inv/rollback", headers=AUTH)
    assert status == 200
    assert await explained(client, proxy.url + "/inv", **{"X-Strangler-Backend": "billing"}) == (
        "inv; backend=legacy; reason=killed"
    )
    assert await explained(client, proxy.url + "/inv") is None  # not a tester
