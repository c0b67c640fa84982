"""``ShadowService`` wired into a small real proxy, exactly as the pipeline wires it.

``MiniProxy.handle`` is the reference for the pipeline: ``begin`` before forwarding,
the request body teed into ``tap.request``, the primary's head and chunks into
``tap.response``, ``tap.close(complete)`` in a ``finally``. The user's answer never
waits for the shadow: a shadow upstream that hangs changes nothing for the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient, AiohttpServer

from strangler.config.model import Upstream
from strangler.config.shadow_model import CompareRules, ConfirmSpec, ShadowSpec, parse_json_path
from strangler.forward.headers import end_to_end
from strangler.forward.pool import Forwarder
from strangler.shadow.capture import Capture
from strangler.shadow.job import CONFIRM_BURST
from strangler.shadow.metrics import ShadowMetrics
from strangler.shadow.samples import ShadowResults
from strangler.shadow.service import CompiledShadow, ShadowService, compile_shadow


@dataclass
class Seen:
    name: str
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    held: int = 0
    holding: asyncio.Event = field(default_factory=asyncio.Event)


SEEN = web.AppKey("seen", Seen)


async def items(request: web.Request) -> web.Response:
    seen = request.app[SEEN]
    seen.requests.append((request.method, request.path_qs, b""))
    i = int(request.match_info["id"])
    wrong = seen.name == "shadow" and i % 5 == 0
    return web.json_response({"id": i, "price": i * 10 + wrong, "served_by": seen.name})


async def echo(request: web.Request) -> web.Response:
    seen = request.app[SEEN]
    body = await request.read()
    seen.requests.append((request.method, request.path_qs, body))
    return web.json_response({"got": body.decode()})


async def slow(request: web.Request) -> web.Response:
    """Answers at once on legacy; on the shadow, only once the test releases it."""
    seen = request.app[SEEN]
    seen.requests.append((request.method, request.path_qs, b""))
    if seen.name == "shadow":
        seen.held += 1
        seen.holding.set()
        await seen.release.wait()
    return web.json_response({"ok": True})


def upstream_app(name: str) -> web.Application:
    app = web.Application()
    app[SEEN] = Seen(name)
    app.router.add_get("/items/{id}", items)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/slow", slow)
    return app


async def teed(request: web.BaseRequest, tee: Capture | None) -> AsyncIterator[bytes]:
    """The client's body in chunks, each also fed to the shadow's request capture."""
    while chunk := await request.content.readany():
        if tee is not None:
            tee.feed(chunk)
        yield chunk
    if tee is not None:
        tee.done(True)


class MiniProxy:
    """The pipeline's shadow wiring, reduced to the essentials."""

    def __init__(self, service: ShadowService, forwarder: Forwarder, legacy: Upstream) -> None:
        self.service = service
        self.forwarder = forwarder
        self.legacy = legacy
        self.shadow: CompiledShadow | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        pool = self.forwarder.pool(self.legacy)
        headers = end_to_end(request.headers)
        headers["Host"] = request.host
        shadow = self.shadow  # routes without shadow: this one check, nothing allocated
        tap = None
        if shadow is not None and self.service.selects(shadow, request, self.legacy):
            tap = self.service.begin(shadow, request, headers, self.legacy)
        body = None
        if request.body_exists:
            body = teed(request, None if tap is None else tap.request)
        complete = False
        try:
            up = await pool.h1.send(
                request.method, pool.target(request.raw_path), headers, body, retry_stale=not body
            )
            if tap is not None:
                tap.response.head(up.status, up.headers)
            resp = web.StreamResponse(status=up.status, headers=end_to_end(up.headers))
            try:
                await resp.prepare(request)
                async for chunk in up.iter_body():
                    if tap is not None:
                        tap.response.feed(chunk)
                    await resp.write(chunk)
                await resp.write_eof()
                complete = True
            finally:
                up.release()
            return resp
        finally:
            if tap is not None:
                tap.close(complete)


@dataclass
class Env:
    legacy: Seen
    shadow: Seen
    legacy_up: Upstream
    shadow_up: Upstream
    service: ShadowService
    results: ShadowResults
    registry: CollectorRegistry
    proxy: MiniProxy
    client_factory: AiohttpClient

    def use(self, spec: ShadowSpec, route: str = "items") -> CompiledShadow:
        upstreams = {"legacy": self.legacy_up, "shadow": self.shadow_up}
        compiled = compile_shadow(route, spec, upstreams)
        self.service.configure([compiled])
        self.proxy.shadow = compiled
        return compiled

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


@pytest.fixture
async def env(aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient) -> AsyncIterator[Env]:
    legacy_app, shadow_app = upstream_app("legacy"), upstream_app("shadow")
    legacy_srv = await aiohttp_server(legacy_app)
    shadow_srv = await aiohttp_server(shadow_app)
    legacy_up = Upstream(name="legacy", url=str(legacy_srv.make_url("")).rstrip("/"))
    shadow_up = Upstream(name="shadow", url=str(shadow_srv.make_url("")).rstrip("/"))
    forwarder = Forwarder()
    registry = CollectorRegistry()
    results = ShadowResults(ShadowMetrics(registry))
    service = ShadowService(forwarder.pool, results, rand=lambda: 0.0)
    e = Env(
        legacy=legacy_app[SEEN],
        shadow=shadow_app[SEEN],
        legacy_up=legacy_up,
        shadow_up=shadow_up,
        service=service,
        results=results,
        registry=registry,
        proxy=MiniProxy(service, forwarder, legacy_up),
        client_factory=aiohttp_client,
    )
    yield e
    e.shadow.release.set()
    await service.drain(5.0)
    await forwarder.close()


async def proxy_client(env: Env) -> TestClient[web.Request, web.Application]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", env.proxy.handle)
    return await env.client_factory(app)


IGNORE_SERVED_BY = CompareRules(ignore=(parse_json_path("$.served_by"),))


async def test_mirrors_in_the_background_and_the_user_gets_the_primary(env: Env) -> None:
    env.use(ShadowSpec(to="shadow", compare=IGNORE_SERVED_BY))
    c = await proxy_client(env)
    for i in range(1, 11):
        resp = await c.get(f"/items/{i}")
        assert resp.status == 200
        assert (await resp.json())["price"] == i * 10  # always legacy's answer
    await env.service.join()
    r = env.results.route("items")
    assert (r.compared, r.matches, r.mismatches, r.parity) == (10, 8, 2, 0.8)
    assert env.metric("strangler_shadow_parity_ratio", route="items") == 0.8
    assert len(env.shadow.requests) == 10


async def test_configure_shows_routes_at_zero(env: Env) -> None:
    env.use(ShadowSpec(to="shadow"), route="invoices")
    for outcome in ("match", "mismatch", "unstable", "error", "dropped"):
        value = env.metric("strangler_shadow_requests_total", route="invoices", outcome=outcome)
        assert value == 0
    assert list(env.results.routes) == ["invoices"]
    assert env.results.routes["invoices"].summary()["compared"] == 0
    env.service.configure([])  # the route lost its shadow on reload
    assert env.results.summary()["routes"] == []


async def test_confirming_re_reads_stay_within_the_routes_budget(env: Env) -> None:
    """Every mismatch asks for a re-read of the primary; with ``max_share: 0%`` only
    the saved-up burst is spent, and the rest count as mismatches, unconfirmed. The
    route's own ``ignore`` paths are listed as ignored by the config."""
    compare = CompareRules(
        ignore=IGNORE_SERVED_BY.ignore, confirm=ConfirmSpec(enabled=True, max_share=0.0)
    )
    env.use(ShadowSpec(to="shadow", compare=compare))
    c = await proxy_client(env)
    for i in range(1, 61):
        assert (await c.get(f"/items/{i}")).status == 200
        await env.service.join()  # one at a time: the budget is spent in order
    r = env.results.route("items")
    assert (r.mismatches, r.unstable) == (12, 0)  # ids 5, 10, ...: real differences
    assert len(env.legacy.requests) == 60 + CONFIRM_BURST
    assert r.noise.as_dict()["ignored"] == [
        {"path": "$.served_by", "why": "config: compare.ignore"}
    ]


async def test_loop_guard(env: Env) -> None:
    env.use(ShadowSpec(to="shadow"))
    c = await proxy_client(env)
    resp = await c.get("/items/1", headers={"X-Strangler-Shadow": "1"})
    assert resp.status == 200
    await env.service.join()
    assert env.shadow.requests == []
    assert env.results.route("items").compared == 0


async def test_writes_are_not_mirrored_unless_allowed(env: Env) -> None:
    env.use(ShadowSpec(to="shadow"))
    c = await proxy_client(env)
    assert (await c.post("/echo", data=b"one")).status == 200
    await env.service.join()
    assert env.shadow.requests == []

    env.use(ShadowSpec(to="shadow", writes=True))
    resp = await c.post("/echo", data=b"two")
    assert await resp.json() == {"got": "two"}
    await env.service.join()
    assert env.shadow.requests == [("POST", "/echo", b"two")]
    assert env.results.route("items").matches == 1


async def test_a_request_body_over_max_body_is_not_mirrored(env: Env) -> None:
    env.use(ShadowSpec(to="shadow", writes=True, max_body=3))
    c = await proxy_client(env)
    assert (await c.put("/echo", data=b"four")).status == 200
    await env.service.join()
    assert env.shadow.requests == []
    assert env.results.route("items").skipped == 1


async def test_a_hanging_shadow_never_delays_users_and_overflow_is_dropped(env: Env) -> None:
    env.use(ShadowSpec(to="shadow", concurrency=1, queue=1))
    c = await proxy_client(env)
    for _ in range(10):
        resp = await c.get("/slow")  # legacy answers; the shadow holds the first copy
        assert resp.status == 200
        assert await resp.json() == {"ok": True}
    await env.shadow.holding.wait()
    lane = env.service.lane("items")
    assert lane is not None
    assert (lane.running, lane.waiting) == (1, 1)
    r = env.results.route("items")
    assert r.dropped == 8
    assert env.metric("strangler_shadow_requests_total", route="items", outcome="dropped") == 8
    assert env.shadow.held == 1
    env.shadow.release.set()
    await env.service.join()
    assert (r.compared, r.matches, r.dropped) == (2, 2, 8)


async def test_drain_cuts_jobs_past_the_deadline(env: Env) -> None:
    compiled = env.use(ShadowSpec(to="shadow", concurrency=2, queue=0))
    c = await proxy_client(env)
    assert (await c.get("/slow")).status == 200
    await env.shadow.holding.wait()
    assert await env.service.drain(0.0) == 1
    r = env.results.route("items")
    assert (r.compared, r.errors) == (0, 0)  # a cut job records nothing
    # After the drain nothing more is mirrored; the proxy still answers.
    assert (await c.get("/slow")).status == 200
    assert r.dropped == 1
    # A route the service never saw (a newer snapshot) gets no lane after the drain.
    other = compile_shadow("other", compiled.spec, {"shadow": env.shadow_up})
    env.proxy.shadow = other
    assert (await c.get("/slow")).status == 200
    assert env.service.lane("other") is None
    assert env.results.route("other").dropped == 1


async def test_no_shadow_when_the_primary_is_the_shadow_upstream(env: Env) -> None:
    env.use(ShadowSpec(to="legacy"))  # e.g. a canary request already on this upstream
    c = await proxy_client(env)
    assert (await c.get("/items/1")).status == 200
    await env.service.join()
    assert env.results.route("items").compared == 0
    assert len(env.legacy.requests) == 1


async def test_sampling_percentage(env: Env) -> None:
    draws = iter([0.05, 0.5, 0.09, 0.95])
    env.service._rand = lambda: next(draws)
    env.use(ShadowSpec(to="shadow", ratio=0.1, compare=IGNORE_SERVED_BY))
    c = await proxy_client(env)
    for i in range(1, 5):
        assert (await c.get(f"/items/{i}")).status == 200
    await env.service.join()
    assert [p for _, p, _ in env.shadow.requests] == ["/items/1", "/items/3"]


async def test_begin_rechecks_write_safety(env: Env) -> None:
    compiled = env.use(ShadowSpec(to="shadow"))
    seen: list[tuple[str, bool]] = []

    async def handler(request: web.Request) -> web.Response:
        tap = env.service.begin(compiled, request, CIMultiDict(), env.legacy_up)
        seen.append((request.method, tap is not None))
        if tap is not None:
            tap.close(False)
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    c = await env.client_factory(app)
    await c.get("/x", headers={"X-Strangler-Shadow": "1"})
    await c.delete("/x")
    await c.get("/x")
    assert seen == [("GET", False), ("DELETE", False), ("GET", True)]
    await env.service.join()
    assert env.results.route("items").skipped == 1  # the one begun, then cut short


async def test_a_body_the_proxy_already_holds_is_mirrored_as_is(env: Env) -> None:
    compiled = env.use(ShadowSpec(to="shadow", writes=True))

    async def handler(request: web.Request) -> web.Response:
        data = await request.read()  # e.g. buffered for a fallback
        headers = end_to_end(request.headers)
        tap = env.service.begin(compiled, request, headers, env.legacy_up, body=data)
        assert tap is not None
        assert tap.request is None  # nothing to feed
        tap.response.head(200, CIMultiDict({"Content-Type": "application/json; charset=utf-8"}))
        tap.response.feed(b'{"got": "abc"}')
        tap.response.done(True)
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    c = await env.client_factory(app)
    await c.post("/echo", data=b"abc")
    await env.service.join()
    assert env.shadow.requests == [("POST", "/echo", b"abc")]
    assert env.results.route("items").matches == 1
