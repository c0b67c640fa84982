"""Shadow jobs end to end against real upstreams (``aiohttp_server`` on 127.0.0.1).

A *legacy* app and a *shadow* app serve the same API; the shadow app answers wrong on
purpose for every 5th item. Jobs are run as the proxy runs them: the primary's answer
is fetched through the same ``UpstreamPool`` client and teed into the job's capture
while the job talks to the shadow upstream. Tests wait on events and on the jobs
themselves, never on sleeps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import doctest
import gzip
import importlib
import itertools
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpServer

import strangler.shadow.job as job_module
from strangler.config.model import Timeouts, Upstream
from strangler.config.shadow_model import (
    CompareRules,
    ConfirmSpec,
    NoiseSpec,
    ShadowSpec,
    parse_json_path,
)
from strangler.forward.pool import Forwarder, UpstreamPool
from strangler.shadow.capture import Capture
from strangler.shadow.compare import Rules
from strangler.shadow.job import ConfirmBudget, ShadowJob, run, should_shadow
from strangler.shadow.metrics import ShadowMetrics
from strangler.shadow.samples import BODY_EXCERPT, REDACTED, RouteResults, ShadowResults

brotli = importlib.import_module("brotli")


def test_doctests() -> None:
    assert doctest.testmod(job_module).failed == 0


@dataclass
class App:
    """What one upstream app saw, and a gate its /hang endpoint waits on."""

    name: str
    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    hung: asyncio.Event = field(default_factory=asyncio.Event)
    hang_cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    counter: itertools.count[int] = field(default_factory=itertools.count)
    state: dict[int, str] = field(default_factory=dict)  # /orders/{id}: what a write set


APP = web.AppKey("app", App)


def item(app: App, i: int) -> dict[str, object]:
    wrong = app.name == "shadow" and i % 5 == 0
    return {
        "id": i,
        "name": f"item {i}",
        "price": i * 10 + (1 if wrong else 0),
        "tags": ["a", "b", "c"] if app.name == "legacy" else ["c", "b", "a"],
        "generated_at": f"{app.name}-{next(app.counter)}",
    }


async def record(request: web.Request) -> App:
    app = request.app[APP]
    body = await request.read()
    app.seen.append((request.method, request.path_qs, dict(request.headers), body))
    return app


async def items(request: web.Request) -> web.Response:
    app = await record(request)
    return web.json_response(item(app, int(request.match_info["id"])))


async def compressed(request: web.Request) -> web.Response:
    """The same JSON, gzip from legacy and brotli from the shadow."""
    app = await record(request)
    raw = json.dumps({"id": int(request.match_info["id"]), "ok": True}).encode()
    if app.name == "legacy":
        body, coding = gzip.compress(raw), "gzip"
    else:
        body, coding = brotli.compress(raw), "br"
    return web.Response(
        body=body, headers={"Content-Type": "application/json", "Content-Encoding": coding}
    )


async def big(request: web.Request) -> web.Response:
    await record(request)
    return web.Response(body=b"x" * (2 << 20), content_type="application/octet-stream")


async def secret(request: web.Request) -> web.Response:
    """Sets a cookie and returns a long body that differs between the apps."""
    app = await record(request)
    resp = web.json_response({"who": app.name, "pad": "p" * 5000})
    resp.set_cookie("session", f"{app.name}-secret-session")
    return resp


async def noisy(request: web.Request) -> web.Response:
    """A fresh request id on every answer; ``v`` is stable (wrong on the shadow for 5)."""
    app = await record(request)
    i = int(request.match_info["id"])
    v = i + (1 if app.name == "shadow" and i == 5 else 0)
    return web.json_response({"request_id": f"{app.name}-{next(app.counter)}", "v": v})


async def order(request: web.Request) -> web.Response:
    app = await record(request)
    i = int(request.match_info["id"])
    return web.json_response({"id": i, "state": app.state.get(i, "PAID")})


async def echo(request: web.Request) -> web.Response:
    app = await record(request)
    return web.json_response({"got": app.seen[-1][3].decode()})


async def hang(request: web.Request) -> web.Response:
    app = await record(request)
    app.hung.set()
    try:
        await app.release.wait()
    except asyncio.CancelledError:
        app.hang_cancelled.set()
        raise
    return web.json_response({})


def build(name: str) -> web.Application:
    app = web.Application()
    app[APP] = App(name)
    app.router.add_get("/items/{id}", items)
    app.router.add_get("/compressed/{id}", compressed)
    app.router.add_get("/big", big)
    app.router.add_get("/secret", secret)
    app.router.add_get("/noisy/{id}", noisy)
    app.router.add_get("/orders/{id}", order)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/hang", hang)
    return app


@dataclass
class Env:
    legacy: App
    shadow: App
    legacy_up: Upstream
    shadow_up: Upstream
    forwarder: Forwarder
    registry: CollectorRegistry
    results: ShadowResults

    def pool(self, up: Upstream) -> UpstreamPool:
        return self.forwarder.pool(up)

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


@pytest.fixture
async def env(aiohttp_server: AiohttpServer) -> AsyncIterator[Env]:
    legacy_app, shadow_app = build("legacy"), build("shadow")
    legacy_srv = await aiohttp_server(legacy_app)
    shadow_srv = await aiohttp_server(shadow_app)
    registry = CollectorRegistry()
    e = Env(
        legacy=legacy_app[APP],
        shadow=shadow_app[APP],
        legacy_up=Upstream(name="legacy", url=str(legacy_srv.make_url("")).rstrip("/")),
        shadow_up=Upstream(name="shadow", url=str(shadow_srv.make_url("")).rstrip("/")),
        forwarder=Forwarder(),
        registry=registry,
        results=ShadowResults(ShadowMetrics(registry)),
    )
    yield e
    e.legacy.release.set()
    e.shadow.release.set()
    await e.forwarder.close()


SPEC = ShadowSpec(
    to="shadow",
    compare=CompareRules(
        ignore=(parse_json_path("$.generated_at"),),
        unordered_arrays=(parse_json_path("$.tags"),),
    ),
)


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def primary_exchange(
    pool: UpstreamPool, method: str, target: str, capture: Capture, body: bytes | None = None
) -> int:
    """What the pipeline does for the user's request: forward it and stream the answer
    back, teeing every chunk into the shadow capture. Returns the status."""
    headers = CIMultiDict({"Host": "proxy.test"})
    if body is not None:
        headers["Content-Length"] = str(len(body))
    up = await pool.h1.send(
        method, pool.target(target), headers, None if body is None else one(body), retry_stale=True
    )
    capture.head(up.status, up.headers)
    complete = False
    try:
        async for chunk in up.iter_body():
            capture.feed(chunk)  # the client would get `chunk` here
        complete = True
    finally:
        up.release()
        capture.done(complete)
    return up.status


def job_for(
    env: Env,
    target: str,
    spec: ShadowSpec = SPEC,
    *,
    method: str = "GET",
    headers: CIMultiDict[str] | None = None,
    upstream: Upstream | None = None,
) -> ShadowJob:
    return ShadowJob(
        route="items",
        spec=spec,
        upstream=upstream or env.shadow_up,
        method=method,
        target=target,
        headers=headers if headers is not None else CIMultiDict({"Accept": "*/*"}),
        client_host="proxy.test",
        body=None,
        primary=Capture(spec.max_body),
        primary_upstream=env.legacy_up,
    )


async def mirror(env: Env, job: ShadowJob, results: RouteResults | None = None) -> tuple[str, int]:
    """Run the job and the primary exchange side by side, like the proxy does."""
    results = results or env.results.route("items", job.spec.compare.noise)
    outcome, status = await asyncio.gather(
        run(job, env.pool, Rules.from_spec(job.spec.compare), results),
        primary_exchange(
            env.pool(env.legacy_up),
            job.method,
            job.target,
            job.primary,
            job.body if isinstance(job.body, bytes) else None,
        ),
    )
    return outcome, status


async def test_parity_matches_the_injected_mismatch_rate(env: Env) -> None:
    outcomes = [(await mirror(env, job_for(env, f"/items/{i}")))[0] for i in range(1, 21)]
    assert outcomes.count("mismatch") == 4  # ids 5, 10, 15, 20
    r = env.results.route("items")
    assert (r.compared, r.matches, r.mismatches, r.errors) == (20, 16, 4, 0)
    assert r.parity == 0.8
    assert r.by_kind == {"status": 0, "header": 0, "body": 4}
    assert r.paths.top(5) == [("$.price", 4)]
    assert r.duration_max > 0
    m = env.metric
    assert m("strangler_shadow_requests_total", route="items", outcome="match") == 16
    assert m("strangler_shadow_requests_total", route="items", outcome="mismatch") == 4
    assert m("strangler_shadow_requests_total", route="items", outcome="error") == 0
    assert m("strangler_shadow_mismatches_total", route="items", kind="body") == 4
    assert m("strangler_shadow_mismatches_total", route="items", kind="status") == 0
    assert m("strangler_shadow_parity_ratio", route="items") == 0.8
    assert m("strangler_shadow_duration_seconds_count", route="items") == 20

    [sample, *_] = reversed(r.samples)
    assert sample.outcome == "mismatch"
    assert sample.target == "/items/20"
    assert [(d.where, d.primary, d.shadow) for d in sample.differences] == [
        ("$.price", "200", "201")
    ]


async def test_the_shadow_gets_the_marker_and_the_clients_host(env: Env) -> None:
    await mirror(env, job_for(env, "/items/1?x=1"))
    [(method, path_qs, headers, _)] = env.shadow.seen
    assert (method, path_qs) == ("GET", "/items/1?x=1")
    assert headers["X-Strangler-Shadow"] == "1"
    assert headers["Host"] == "proxy.test"
    assert headers["Accept"] == "*/*"
    assert "X-Strangler-Shadow" not in env.legacy.seen[0][2]  # the primary is untouched


async def test_a_dead_shadow_upstream_ends_in_error_and_nothing_else(env: Env) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    dead = Upstream(name="dead", url=f"http://127.0.0.1:{dead_port}")
    bad = job_for(env, "/items/3", upstream=dead)
    good = job_for(env, "/items/4")
    (bad_outcome, bad_status), (good_outcome, good_status) = await asyncio.gather(
        mirror(env, bad, env.results.route("dead-route")), mirror(env, good)
    )
    assert (bad_outcome, bad_status) == ("error", 200)  # the user's answer was fine
    assert (good_outcome, good_status) == ("match", 200)
    r = env.results.route("dead-route")
    assert (r.errors, r.compared) == (1, 0)
    assert r.parity is None
    [sample] = r.samples
    assert sample.outcome == "error"
    assert "upstream 'dead'" in sample.error
    assert env.metric("strangler_shadow_requests_total", route="dead-route", outcome="error") == 1
    assert env.results.route("items").matches == 1


async def test_a_slow_shadow_times_out_as_an_error(env: Env) -> None:
    spec = dataclasses.replace(SPEC, timeout=0.2)
    job = job_for(env, "/hang", spec)
    job_fast_primary = job_for(env, "/items/1", spec)
    results = env.results.route("slow")
    outcome = await run(job, env.pool, Rules.from_spec(spec.compare), results)
    assert outcome == "error"
    assert env.shadow.hung.is_set()
    await env.shadow.hang_cancelled.wait()  # the shadow connection was closed, not leaked
    [sample] = results.samples
    assert sample.error == "shadow job timed out after 0.2s (shadow)"
    # The same route still works for the next request.
    after, _ = await mirror(env, job_fast_primary, results)
    assert after == "match"


async def test_the_shadow_read_timeout_is_an_error(env: Env) -> None:
    slow = Upstream(name="shadow", url=env.shadow_up.url, timeouts=Timeouts(read=0.1))
    results = env.results.route("read-timeout")
    outcome = await run(
        job_for(env, "/hang", upstream=slow), env.pool, Rules.from_spec(SPEC.compare), results
    )
    assert outcome == "error"
    assert results.samples[0].error == "upstream 'shadow': timeout during response_headers: read"


async def test_a_primary_cut_short_is_skipped(env: Env) -> None:
    job = job_for(env, "/items/1")
    job.primary.head(200, CIMultiDict())
    job.primary.done(False)  # the client went away mid-body
    results = env.results.route("items")
    assert await run(job, env.pool, Rules.from_spec(SPEC.compare), results) == "skipped"
    assert (results.skipped, results.compared, results.errors) == (1, 0, 0)


async def test_a_primary_that_failed_before_its_head_is_skipped(env: Env) -> None:
    job = job_for(env, "/items/1")
    job.primary.done(False)  # 502 from the proxy: no head at all
    results = env.results.route("items")
    assert await run(job, env.pool, Rules.from_spec(SPEC.compare), results) == "skipped"


async def test_content_encodings_are_decoded_before_comparing(env: Env) -> None:
    outcome, _ = await mirror(env, job_for(env, "/compressed/7"))
    assert outcome == "match"  # gzip from legacy, br from the shadow, same JSON


async def test_bodies_over_max_body_compare_on_status_and_headers(env: Env) -> None:
    outcome, _ = await mirror(env, job_for(env, "/big"))
    assert outcome == "match"
    r = env.results.route("items")
    assert (r.compared, r.truncated) == (1, 1)


async def test_samples_are_redacted_and_bodies_cut(env: Env) -> None:
    headers = CIMultiDict(
        {
            "Authorization": "Bearer top-secret",
            "Cookie": "session=abc",
            "X-Api-Key": "k-123",
            "Accept": "application/json",
        }
    )
    spec = ShadowSpec(to="shadow", compare=CompareRules(headers=("Content-Type", "Set-Cookie")))
    job = job_for(env, "/secret?access_token=tok-987&page=2", spec, headers=headers)
    outcome, _ = await mirror(env, job)
    assert outcome == "mismatch"
    # The shadow received the real credentials (it is a real request) ...
    assert env.shadow.seen[0][2]["Authorization"] == "Bearer top-secret"
    # ... but the sample keeps none of them.
    [sample] = env.results.route("items").samples
    dumped = json.dumps(sample.as_dict())
    for secret_value in ("top-secret", "session=abc", "k-123", "tok-987", "secret-session"):
        assert secret_value not in dumped
    assert dict(sample.request_headers)["Authorization"] == REDACTED
    assert dict(sample.request_headers)["Accept"] == "application/json"
    assert sample.target == "/secret?access_token=%3Credacted%3E&page=2"
    assert sample.primary is not None
    assert sample.shadow is not None
    assert dict(sample.primary.headers)["Set-Cookie"] == REDACTED
    assert sample.primary.body is not None
    assert len(sample.primary.body) == BODY_EXCERPT + 1  # cut, with "…"
    assert sample.primary.body_bytes > 5000
    # A differing Set-Cookie is reported, without the cookies.
    [header_diff] = [d for d in sample.differences if d.kind == "header"]
    assert (header_diff.where, header_diff.primary, header_diff.shadow) == (
        "Set-Cookie",
        REDACTED,
        REDACTED,
    )


async def test_noise_mode_learns_and_excludes_noisy_paths(env: Env) -> None:
    spec = ShadowSpec(
        to="shadow",
        compare=CompareRules(noise=NoiseSpec(enabled=True, samples=2, min_observations=3)),
    )
    results = env.results.route("noisy", spec.compare.noise)
    outcomes = [
        (await mirror(env, job_for(env, f"/noisy/{i}", spec), results))[0] for i in range(1, 7)
    ]
    # Until the request id is learned, the primary's own second answer explains the
    # difference: unstable, not counted. Then it is ignored, and a real one still shows.
    assert outcomes == ["unstable", "unstable", "unstable", "match", "mismatch", "match"]
    assert (results.unstable, results.compared) == (3, 3)
    assert [str(p) for p in results.noise.noisy] == ["$.request_id"]
    assert results.noise.observations == 6
    v_diffs = [d.where for d in results.samples[0].differences]
    assert v_diffs == ["$.v"]  # the real difference stays; the request id is noise
    # Legacy got each request twice (the user's and the noise re-send, with the marker).
    markers = [h.get("X-Strangler-Shadow") for _, _, h, _ in env.legacy.seen]
    assert markers.count("1") == 6
    assert markers.count(None) == 6


async def test_noise_mode_never_resends_writes(env: Env) -> None:
    spec = ShadowSpec(to="shadow", writes=True, compare=CompareRules(noise=NoiseSpec(enabled=True)))
    job = job_for(env, "/echo", spec, method="POST")
    job.body = b"hello"
    outcome, _ = await mirror(env, job)
    assert outcome == "match"
    assert [m for m, *_ in env.legacy.seen] == ["POST"]  # the user's request only
    assert env.shadow.seen[0][3] == b"hello"


async def test_a_request_body_capture_is_mirrored_once_complete(env: Env) -> None:
    spec = ShadowSpec(to="shadow", writes=True)
    job = job_for(env, "/echo", spec, method="PUT")
    body = Capture(spec.max_body)
    job.body = body
    results = env.results.route("items")
    task = asyncio.ensure_future(run(job, env.pool, Rules.from_spec(spec.compare), results))
    body.feed(b"he")
    body.feed(b"llo")
    body.done(True)
    job.primary.head(200, CIMultiDict({"Content-Type": "application/json; charset=utf-8"}))
    job.primary.feed(b'{"got": "hello"}')
    job.primary.done(True)
    assert await task == "match"
    assert env.shadow.seen[0][:2] == ("PUT", "/echo")
    assert env.shadow.seen[0][3] == b"hello"


async def test_a_request_body_over_max_body_is_not_mirrored(env: Env) -> None:
    spec = ShadowSpec(to="shadow", writes=True, max_body=4)
    job = job_for(env, "/echo", spec, method="POST")
    body = Capture(spec.max_body)
    job.body = body
    body.feed(b"too long")
    body.done(True)
    results = env.results.route("items")
    assert await run(job, env.pool, Rules.from_spec(spec.compare), results) == "skipped"
    assert env.shadow.seen == []


@pytest.mark.parametrize(
    ("method", "headers", "writes", "ratio", "draw", "expected"),
    [
        ("GET", {}, False, 1.0, 0.99, True),
        ("HEAD", {}, False, 1.0, 0.0, True),
        ("OPTIONS", {}, False, 1.0, 0.0, True),
        ("POST", {}, False, 1.0, 0.0, False),
        ("DELETE", {}, False, 1.0, 0.0, False),
        ("POST", {}, True, 1.0, 0.0, True),
        ("GET", {"X-Strangler-Shadow": "1"}, False, 1.0, 0.0, False),  # loop guard
        ("GET", {"x-strangler-shadow": "0"}, True, 1.0, 0.0, False),  # any value
        ("GET", {}, False, 0.1, 0.0999, True),
        ("GET", {}, False, 0.1, 0.1, False),
        ("GET", {}, False, 0.0, 0.0, False),
    ],
)
def test_should_shadow(
    method: str,
    headers: dict[str, str],
    writes: bool,
    ratio: float,
    draw: float,
    expected: bool,
) -> None:
    spec = ShadowSpec(to="shadow", writes=writes, ratio=ratio)
    assert should_shadow(spec, method, CIMultiDict(headers), lambda: draw) is expected


def test_should_shadow_does_not_draw_at_100_percent() -> None:
    def draw() -> float:
        raise AssertionError("no draw needed")

    assert should_shadow(ShadowSpec(to="s"), "GET", CIMultiDict(), draw)


def answered(job: ShadowJob, doc: dict[str, object]) -> None:
    """The user's answer, as the proxy captured it (before any later write)."""
    job.primary.head(200, CIMultiDict({"Content-Type": "application/json; charset=utf-8"}))
    job.primary.feed(json.dumps(doc).encode())
    job.primary.done(True)


async def test_a_race_with_a_write_is_unstable_not_a_mismatch(env: Env) -> None:
    """The user read order 2 as PAID; a write made it SHIPPED (and was synced to the
    new side) before the shadow copy arrived: the re-read primary shows the same
    difference, so it is a race, not a regression."""
    env.legacy.state[2] = env.shadow.state[2] = "SHIPPED"
    job = job_for(env, "/orders/2")
    answered(job, {"id": 2, "state": "PAID"})
    results = env.results.route("items")
    assert await run(job, env.pool, Rules.from_spec(SPEC.compare), results) == "unstable"
    assert (results.unstable, results.compared, results.mismatches) == (1, 0, 0)
    assert results.parity is None
    assert env.metric("strangler_shadow_requests_total", route="items", outcome="unstable") == 1
    [(method, path, headers, _)] = env.legacy.seen  # the confirming re-read
    assert (method, path, headers["X-Strangler-Shadow"]) == ("GET", "/orders/2", "1")
    assert results.gate().last.unstable == 1


async def test_a_difference_the_primary_does_not_repeat_is_a_confirmed_mismatch(
    env: Env,
) -> None:
    env.shadow.state[3] = "SHIPPED"  # the new side is wrong; legacy says PAID every time
    job = job_for(env, "/orders/3")
    answered(job, {"id": 3, "state": "PAID"})
    results = env.results.route("items")
    assert await run(job, env.pool, Rules.from_spec(SPEC.compare), results) == "mismatch"
    assert len(env.legacy.seen) == 1  # re-read once to confirm
    assert (results.mismatches, results.unstable) == (1, 0)


async def test_confirm_off_and_writes_never_re_read(env: Env) -> None:
    off = dataclasses.replace(
        SPEC, compare=dataclasses.replace(SPEC.compare, confirm=ConfirmSpec(enabled=False))
    )
    env.legacy.state[2] = env.shadow.state[2] = "SHIPPED"
    job = job_for(env, "/orders/2", off)
    answered(job, {"id": 2, "state": "PAID"})
    results = env.results.route("items")
    assert await run(job, env.pool, Rules.from_spec(off.compare), results) == "mismatch"
    writes = dataclasses.replace(SPEC, writes=True)
    job = job_for(env, "/echo", writes, method="POST")
    job.body = b"x"
    answered(job, {"got": "something else"})
    assert await run(job, env.pool, Rules.from_spec(writes.compare), results) == "mismatch"
    assert env.legacy.seen == []  # neither was sent to the primary again


async def test_the_confirm_budget_bounds_re_reads(env: Env) -> None:
    """No budget left: the mismatch counts, unconfirmed, and the primary is spared."""
    budget = ConfirmBudget(0.0, burst=1.0)
    results = env.results.route("items")
    for _ in range(3):
        env.legacy.state[2] = env.shadow.state[2] = "SHIPPED"
        job = job_for(env, "/orders/2")
        answered(job, {"id": 2, "state": "PAID"})
        await run(job, env.pool, Rules.from_spec(SPEC.compare), results, budget)
    assert (results.unstable, results.mismatches) == (1, 2)
    assert len(env.legacy.seen) == 1


async def test_a_re_read_that_runs_out_of_time_leaves_the_verdict_unconfirmed(env: Env) -> None:
    spec = dataclasses.replace(SPEC, timeout=0.5)
    env.shadow.state[2] = "SHIPPED"
    job = job_for(env, "/orders/2", spec, upstream=env.shadow_up)
    job.target = "/orders/2"
    answered(job, {"id": 2, "state": "PAID"})
    hung = Upstream(name="legacy", url=env.legacy_up.url)
    job.primary_upstream = hung
    results = env.results.route("items")

    def pool(up: Upstream) -> UpstreamPool:
        # The re-read goes to /hang: legacy never answers it within the job's time.
        if up is hung:
            p = env.pool(up)
            job.target = "/hang"
            return p
        return env.pool(up)

    assert await run(job, pool, Rules.from_spec(spec.compare), results) == "mismatch"
    assert env.legacy.hung.is_set()
