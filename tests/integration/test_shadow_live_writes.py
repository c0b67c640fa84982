"""Shadow parity while users write: real legacy and new services that share their data.

Writes go to legacy and are synced to the new service at once, as a migration's data
sync does. A shadow copy of a read can then reach the new service after the user's
next write was synced there: the new side answers the newer state, which is a race,
not a regression. The race is forced deterministically: the new service's read of a
record waits on an event that the next write to that record sets.

The new service also has a real regression: ``total`` is off by one for 5% of the
records (ids 20 and 40 of 40). It must be found at its true rate, with noise learning
on, on single reads and on a list that writes reorder (most recently updated first).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.conftest import MakeProxy, RunningProxy
from tests.integration.test_shadow_proxy import cfg, summary

ORDERS = 40
STATES = ("PAID", "SHIPPED", "DELIVERED", "RETURNED")


def regressed(order: int) -> bool:
    return order % 20 == 0  # 2 of 40 records: 5%


@dataclass
class Shop:
    """Both services' data and the race switches. ``legacy`` is the source of truth;
    each write is copied to ``new`` before the write is answered."""

    legacy: dict[int, dict[str, object]] = field(default_factory=dict)
    new: dict[int, dict[str, object]] = field(default_factory=dict)
    seq: int = 0
    holds: dict[str, asyncio.Event] = field(default_factory=dict)  # the next write sets
    arrived: dict[str, asyncio.Event] = field(default_factory=dict)  # a held read came

    def __post_init__(self) -> None:
        for i in range(1, ORDERS + 1):
            self.legacy[i] = {"id": i, "state": "PAID", "total": 100 + i, "updated": 0}
            self.new[i] = dict(self.legacy[i])

    def arm(self, key: str) -> None:
        """Make the new service's next read of ``key`` wait for the next write."""
        self.holds[key] = asyncio.Event()
        self.arrived[key] = asyncio.Event()

    async def held(self, key: str) -> None:
        hold = self.holds.get(key)
        if hold is not None:
            self.arrived[key].set()
            await hold.wait()

    def release_all(self) -> None:
        for hold in self.holds.values():
            hold.set()


SHOP = web.AppKey("shop", Shop)


def listing(orders: dict[int, dict[str, object]]) -> list[dict[str, object]]:
    """Most recently updated first, as order lists usually are."""
    return sorted(orders.values(), key=lambda o: (-int(str(o["updated"])), int(str(o["id"]))))


async def legacy_order(request: web.Request) -> web.Response:
    return web.json_response(request.app[SHOP].legacy[int(request.match_info["id"])])


async def legacy_list(request: web.Request) -> web.Response:
    return web.json_response(listing(request.app[SHOP].legacy))


async def legacy_ship(request: web.Request) -> web.Response:
    """A write: the next state, synced to the new service, then held reads go on."""
    shop = request.app[SHOP]
    i = int(request.match_info["id"])
    shop.seq += 1
    order = shop.legacy[i]
    order["state"] = STATES[(STATES.index(str(order["state"])) + 1) % len(STATES)]
    order["updated"] = shop.seq
    shop.new[i] = dict(order)  # the data sync
    for key in (f"order:{i}", "list"):
        hold = shop.holds.pop(key, None)
        if hold is not None:
            hold.set()
    return web.json_response(order)


def new_view(order: dict[str, object]) -> dict[str, object]:
    out = dict(order)
    if regressed(int(str(order["id"]))):
        out["total"] = int(str(order["total"])) + 1  # the regression
    return out


async def new_order(request: web.Request) -> web.Response:
    shop = request.app[SHOP]
    i = int(request.match_info["id"])
    await shop.held(f"order:{i}")
    return web.json_response(new_view(shop.new[i]))


async def new_list(request: web.Request) -> web.Response:
    shop = request.app[SHOP]
    await shop.held("list")
    return web.json_response([new_view(o) for o in listing(shop.new)])


@pytest.fixture
async def shop(aiohttp_server: AiohttpServer) -> AsyncIterator[tuple[str, str, Shop]]:
    state = Shop()
    legacy = web.Application()
    legacy[SHOP] = state
    legacy.router.add_get("/orders", legacy_list)
    legacy.router.add_get("/orders/{id}", legacy_order)
    legacy.router.add_post("/orders/{id}/ship", legacy_ship)
    new = web.Application()
    new[SHOP] = state
    new.router.add_get("/orders", new_list)
    new.router.add_get("/orders/{id}", new_order)
    ls, ns = await aiohttp_server(legacy), await aiohttp_server(new)
    yield str(ls.make_url("")).rstrip("/"), str(ns.make_url("")).rstrip("/"), state
    state.release_all()


def config(legacy: str, new: str, noise: bool) -> str:
    shadow = (
        "shadow: {to: billing, compare: {confirm: {max_share: 100%},"
        f" noise: {{enabled: {str(noise).lower()}, samples: 2, min_observations: 5}}}}}}"
    )
    return cfg(
        legacy,
        new,
        f"""  - {{name: orders-item, owner: t,
      match: {{path: "/orders/{{id:int}}", methods: [GET]}}, to: legacy, {shadow}}}
  - {{name: orders-list, owner: t, match: {{path: /orders, methods: [GET]}},
      to: legacy, {shadow}}}""",
    )


async def read_then_write(
    s: aiohttp.ClientSession, proxy: RunningProxy, shop: Shop, path: str, key: str, order: int
) -> dict[str, object] | list[object]:
    """The race: the user reads, the shadow copy of that read is held at the new
    service, the user's next write (to legacy, synced to new) lets it go on."""
    shop.arm(key)
    async with s.get(f"{proxy.url}{path}") as r:
        seen: dict[str, object] | list[object] = await r.json()
    async with asyncio.timeout(5):
        await shop.arrived[key].wait()  # the shadow copy is at the new service
    async with s.post(f"{proxy.url}/orders/{order}/ship") as r:
        assert r.status == 200
    return seen


@pytest.mark.parametrize("noise", [True, False], ids=["noise-learning", "confirm-only"])
async def test_a_read_racing_a_write_is_unstable_and_a_real_regression_still_counts(
    shop: tuple[str, str, Shop], make_proxy: MakeProxy, noise: bool
) -> None:
    legacy, new, state = shop
    proxy = await make_proxy(config(legacy, new, noise))
    rounds, workers = 5, 4
    raced = {(r, i) for r in range(rounds) for i in range(1, ORDERS + 1) if (i + r) % 10 == 0}

    async def worker(w: int, r: int, s: aiohttp.ClientSession) -> None:
        for i in range(1 + w, ORDERS + 1, workers):  # each worker owns its records
            if (r, i) in raced:
                order = await read_then_write(s, proxy, state, f"/orders/{i}", f"order:{i}", i)
                assert isinstance(order, dict)
            else:
                async with s.get(f"{proxy.url}/orders/{i}") as resp:
                    order = await resp.json()
            assert "total" in order  # users always get legacy's answer
            assert order["total"] == 100 + i

    async with aiohttp.ClientSession() as s:
        for r in range(rounds):
            await asyncio.gather(*(worker(w, r, s) for w in range(workers)))
            # A round touches each record once: wait for its copies before the next
            # round's writes, so only the forced races race.
            await proxy.server.shadow.join()

    reads = rounds * ORDERS
    bad_reads = rounds * sum(regressed(i) for i in range(1, ORDERS + 1))
    unstable = sum(not regressed(i) for _, i in raced)  # a race on a good record
    d = await summary(proxy, "orders-item")
    assert d["unstable"] == unstable == 18
    assert d["mismatches"] == bad_reads == 10  # every read of a regressed record, raced or not
    assert d["compared"] == reads - unstable
    assert d["parity"] == (reads - unstable - bad_reads) / (reads - unstable)
    assert d["errors"] == 0
    gate = d["gate"]
    assert isinstance(gate, dict)
    assert gate["last"]["unstable"] == unstable
    assert gate["last"]["compared"] == reads - unstable
    assert gate["recent"]["mismatches"] == bad_reads
    learned = d["noise"]
    assert isinstance(learned, dict)
    assert learned["noisy_paths"] == []  # 10% of reads raced: never noise
    top = d["top_paths"]
    assert isinstance(top, list)
    assert [p["path"] for p in top] == ["$.total"]  # the state races never count

    metrics = proxy.server.metrics.registry.get_sample_value
    labels = {"route": "orders-item", "outcome": "unstable"}
    assert metrics("strangler_shadow_requests_total", labels) == unstable

    # The list: every record on it, most recently updated first, so a write reorders
    # it. Read it 20 times; three reads race a write. The regressed records are on
    # every answer: every read that is judged must be a mismatch (no `$[*]` learned).
    async with aiohttp.ClientSession() as s:
        for n in range(20):
            if n in (4, 9, 14):
                await read_then_write(s, proxy, state, "/orders", "list", 1 + n)
            else:
                async with s.get(f"{proxy.url}/orders") as resp:
                    assert len(await resp.json()) == ORDERS
            await proxy.server.shadow.join()
    d = await summary(proxy, "orders-list")
    unstable_list, compared_list = d["unstable"], d["compared"]
    assert isinstance(unstable_list, int)
    assert isinstance(compared_list, int)
    assert unstable_list <= 3
    assert compared_list + unstable_list == 20
    assert d["matches"] == 0  # the regression shows on every list read judged
    assert d["mismatches"] == compared_list >= 17
    learned = d["noise"]
    assert isinstance(learned, dict)
    assert learned["noisy_paths"] == []
