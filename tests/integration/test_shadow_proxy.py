"""Shadow traffic through the real proxy: real legacy and shadow upstreams.

The user's answer always comes from the primary; mirrored copies never slow it down,
writes are not mirrored without opt-in, parity matches an injected mismatch rate,
noisy fields are learned and excluded, samples are redacted, memory stays bounded.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.conftest import MakeProxy, RunningProxy, Upstream


class ShadowApp:
    """A shadow upstream: answers like the legacy echo app does for /items/{n}, except
    for every 5th item (a known mismatch rate), and records what it got."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str, dict[str, str]]] = []
        self.release = asyncio.Event()

    async def item(self, request: web.Request) -> web.Response:
        self.got.append((request.method, request.path, dict(request.headers)))
        n = int(request.match_info["n"])
        price = 100 if n % 5 else 999  # every 5th answer differs
        return web.json_response({"id": n, "price": price, "tags": ["a", "b"]})

    async def hold(self, request: web.Request) -> web.Response:
        self.got.append((request.method, request.path, dict(request.headers)))
        await self.release.wait()
        return web.json_response({})


async def legacy_item(request: web.Request) -> web.Response:
    n = int(request.match_info["n"])
    noise = time.time_ns()  # differs on every call: a generated_at-style field
    return web.json_response({"id": n, "price": 100, "tags": ["a", "b"], "generated": noise})


@pytest.fixture
async def apps(aiohttp_server: AiohttpServer) -> AsyncIterator[tuple[str, str, ShadowApp]]:
    legacy = web.Application()
    legacy.router.add_route("*", "/items/{n}", legacy_item)
    legacy.router.add_route("*", "/slow/{n}", legacy_item)
    shadow = ShadowApp()
    new = web.Application()
    new.router.add_route("*", "/items/{n}", shadow.item)
    new.router.add_route("*", "/slow/{n}", shadow.hold)
    ls, ns = await aiohttp_server(legacy), await aiohttp_server(new)
    yield str(ls.make_url("")).rstrip("/"), str(ns.make_url("")).rstrip("/"), shadow
    shadow.release.set()


def cfg(legacy: str, new: str, routes: str) -> str:
    return f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
access_log: {{format: off}}
upstreams:
  legacy: {legacy}
  billing: {new}
routes:
{routes}
"""


async def summary(proxy: RunningProxy, route: str) -> dict[str, object]:
    await proxy.server.shadow.join()  # every mirrored request has been compared
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{proxy.admin_url}/api/shadow/{route}") as r,
    ):
        assert r.status == 200
        body: dict[str, object] = await r.json()
        return body


# The new service's v2 invoice, and the route translation that turns it into legacy's v1.
INVOICE_V2_TO_V1 = """    translate:
      request: [{path: {rewrite: "/v2/invoices/{id}"}}]
      response:
        - json:
            - {rename: {from: invoiceId, to: id}}
            - {rename: {from: state, to: status}}
            - {map: {path: status, values: {paid: PAID}}}
            - {scale: {path: amounts.total, to: total_cents, multiply: 100, as: int}}
            - {drop: [amounts]}"""


def v2_invoice(n: int, cents: int) -> web.Response:
    total = f"{cents // 100}.{cents % 100:02d}"
    return web.json_response({"invoiceId": n, "state": "paid", "amounts": {"total": total}})


async def test_parity_matches_the_injected_mismatch_rate_and_writes_are_not_mirrored(
    apps: tuple[str, str, ShadowApp], make_proxy: MakeProxy
) -> None:
    legacy, new, shadow = apps
    proxy = await make_proxy(
        cfg(
            legacy,
            new,
            "  - {name: items, owner: t, match: {path_prefix: /items}, to: legacy,"
            " shadow: {to: billing, compare: {ignore: [$.generated]}}}",
        )
    )
    async with aiohttp.ClientSession() as s:
        for n in range(1, 51):
            async with s.get(
                f"{proxy.url}/items/{n}", headers={"Authorization": "Bearer hunter2"}
            ) as r:
                body = await r.json()
                assert body["price"] == 100  # always legacy's answer
        async with s.post(f"{proxy.url}/items/7", json={"x": 1}) as r:
            assert r.status == 200
    detail = await summary(proxy, "items")
    assert detail["compared"] == 50
    assert detail["mismatches"] == 10
    assert detail["parity"] == 0.8
    assert all(m == "GET" for m, _, _ in shadow.got)  # the POST was not mirrored
    assert all(h.get("X-Strangler-Shadow") == "1" for _, _, h in shadow.got)
    top = detail["top_paths"]
    assert isinstance(top, list)
    assert top[0]["path"] == "$.price"
    assert "hunter2" not in str(detail)  # samples are redacted


async def test_noise_is_learned_and_excluded(
    apps: tuple[str, str, ShadowApp], make_proxy: MakeProxy
) -> None:
    legacy, new, _ = apps
    proxy = await make_proxy(
        cfg(
            legacy,
            new,
            "  - {name: items, owner: t, match: {path_prefix: /items}, to: legacy,"
            " shadow: {to: billing, compare: {noise: {enabled: true, samples: 2,"
            " min_observations: 5}}}}",
        )
    )
    async with aiohttp.ClientSession() as s:
        for n in range(1, 5):  # ids 1-4: the shadow agrees except for the noise
            for _ in range(5):
                async with s.get(f"{proxy.url}/items/{n}") as r:
                    await r.read()
    detail = await summary(proxy, "items")
    noise = detail["noise"]
    assert isinstance(noise, dict)
    assert "$.generated" in str(noise)
    assert detail["mismatches"] == 0  # the noisy field never counts against parity
    # Until it was learned, the primary's own second answer explained it: unstable.
    unstable, compared = detail["unstable"], detail["compared"]
    assert isinstance(unstable, int)
    assert isinstance(compared, int)
    assert unstable >= 5
    assert compared + unstable == 20


async def test_a_dead_or_slow_shadow_never_slows_the_user(
    apps: tuple[str, str, ShadowApp], make_proxy: MakeProxy
) -> None:
    legacy, new, shadow = apps
    proxy = await make_proxy(
        cfg(
            legacy,
            new,
            "  - {name: plain, owner: t, match: {path_prefix: /items}, to: legacy}\n"
            "  - {name: slow, owner: t, match: {path_prefix: /slow}, to: legacy,"
            " shadow: {to: billing, concurrency: 4, queue: 8}}",
        )
    )

    async def p99(path: str) -> float:
        lat = []
        async with aiohttp.ClientSession() as s:
            for n in range(300):
                t0 = time.perf_counter()
                async with s.get(f"{proxy.url}/{path}/{n}") as r:
                    await r.read()
                    assert r.status == 200
                lat.append(time.perf_counter() - t0)
        return statistics.quantiles(lat, n=100)[98]

    base = await p99("items")
    shadowed = await p99("slow")  # every mirrored copy hangs on the shadow upstream
    assert shadowed < base * 2 + 0.005, (base, shadowed)
    s_summary = (await summary_now(proxy))["routes"]
    assert isinstance(s_summary, list)
    slow = next(r for r in s_summary if r["route"] == "slow")
    assert slow["dropped"] >= 300 - 4 - 8  # bounded: the rest were dropped and counted
    lane = proxy.server.shadow.lane("slow")
    assert lane is not None
    assert lane.running <= 4
    assert lane.waiting <= 8
    shadow.release.set()


async def summary_now(proxy: RunningProxy) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{proxy.admin_url}/api/shadow") as r,
    ):
        body: dict[str, object] = await r.json()
        return body


async def test_writes_are_mirrored_only_with_opt_in(
    apps: tuple[str, str, ShadowApp], make_proxy: MakeProxy, legacy: Upstream
) -> None:
    legacy_url, new, shadow = apps
    proxy = await make_proxy(
        cfg(
            legacy_url,
            new,
            "  - {name: items, owner: t, match: {path_prefix: /items}, to: legacy,"
            " shadow: {to: billing, writes: true}}",
        )
    )
    async with aiohttp.ClientSession() as s, s.put(f"{proxy.url}/items/3", json={"p": 1}) as r:
        assert r.status == 200
    await proxy.server.shadow.join()
    assert [(m, p) for m, p, _ in shadow.got] == [("PUT", "/items/3")]


async def test_a_translating_route_compares_legacy_with_the_translated_new_answer(
    aiohttp_server: AiohttpServer, make_proxy: MakeProxy
) -> None:
    async def legacy_invoice(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        return web.json_response({"id": n, "status": "PAID", "total_cents": 1234 + n})

    got: list[str] = []

    async def new_invoice(request: web.Request) -> web.Response:
        got.append(request.path)
        n = int(request.match_info["n"])
        cents = 1234 + n if n != 3 else 1  # invoice 3 is wrong in the new service
        return v2_invoice(n, cents)

    legacy = web.Application()
    legacy.router.add_get("/api/v1/invoices/{n}", legacy_invoice)
    new = web.Application()
    new.router.add_get("/v2/invoices/{n}", new_invoice)
    ls, ns = await aiohttp_server(legacy), await aiohttp_server(new)
    proxy = await make_proxy(
        cfg(
            str(ls.make_url("")).rstrip("/"),
            str(ns.make_url("")).rstrip("/"),
            """  - name: invoices
    owner: team-billing
    match: {path: "/api/v1/invoices/{id:int}"}
    to: legacy
    shadow: {to: billing}
"""
            + INVOICE_V2_TO_V1,
        )
    )
    async with aiohttp.ClientSession() as s:
        for n in range(1, 6):
            async with s.get(f"{proxy.url}/api/v1/invoices/{n}") as r:
                assert (await r.json())["total_cents"] == 1234 + n  # legacy answers users
    detail = await summary(proxy, "invoices")
    assert got == [f"/v2/invoices/{n}" for n in range(1, 6)]  # the mirror was translated
    assert detail["compared"] == 5
    assert detail["mismatches"] == 1  # only invoice 3: everything else translates equal
    top = detail["top_paths"]
    assert isinstance(top, list)
    assert top[0]["path"] == "$.total_cents"


async def test_a_migrated_route_confirms_with_a_translated_re_read(
    aiohttp_server: AiohttpServer, make_proxy: MakeProxy
) -> None:
    """The route is answered by the new service (translated back into the legacy
    shape) and mirrored to legacy. A confirming re-read of the primary must be
    translated too: compared raw, everything would differ from the user's answer and
    a real mismatch would pass for a race."""

    async def legacy_invoice(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        cents = 1234 + n if n != 3 else 1  # legacy disagrees on invoice 3
        return web.json_response({"id": n, "status": "PAID", "total_cents": cents})

    new_got: list[dict[str, str]] = []

    async def new_invoice(request: web.Request) -> web.Response:
        new_got.append(dict(request.headers))
        n = int(request.match_info["n"])
        return v2_invoice(n, 1234 + n)

    legacy = web.Application()
    legacy.router.add_get("/api/v1/invoices/{n}", legacy_invoice)
    new = web.Application()
    new.router.add_get("/v2/invoices/{n}", new_invoice)
    ls, ns = await aiohttp_server(legacy), await aiohttp_server(new)
    proxy = await make_proxy(
        cfg(
            str(ls.make_url("")).rstrip("/"),
            str(ns.make_url("")).rstrip("/"),
            """  - name: invoices
    owner: team-billing
    match: {path: "/api/v1/invoices/{id:int}"}
    to: billing
    shadow: {to: legacy}
"""
            + INVOICE_V2_TO_V1,
        )
    )
    async with aiohttp.ClientSession() as s:
        for n in range(1, 6):
            async with s.get(f"{proxy.url}/api/v1/invoices/{n}") as r:
                assert (await r.json())["total_cents"] == 1234 + n  # the new side answers
    detail = await summary(proxy, "invoices")
    assert (detail["mismatches"], detail["unstable"], detail["compared"]) == (1, 0, 5)
    # The user's 5 requests, and one confirming re-read (marked) for invoice 3.
    assert [h.get("X-Strangler-Shadow") for h in new_got].count("1") == 1
    assert len(new_got) == 6
