"""The autopilot over Redis (``state.backend: redis``): replicas that share Redis share
one evaluator, one plan state and one lock. A real ``redis-server`` on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from strangler.migrate.machine import MigrationState
from strangler.migrate.redis_store import RedisMigrateStore
from tests.conftest import MakeProxy, RunningProxy
from tests.integration.test_autopilot import (
    DEADLINE,
    Load,
    NewService,
    apps,  # noqa: F401 (a fixture)
    config,
    views,
)
from tests.test_redis_store import RedisServer, running_redis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    workdir = tmp_path / "redis"
    workdir.mkdir()
    with running_redis(workdir) as server:
        yield server


def test_one_replica_holds_the_lease_and_the_lock_is_exclusive(redis_server: RedisServer) -> None:
    a = RedisMigrateStore(redis_server.url, key_prefix="t:")
    b = RedisMigrateStore(redis_server.url, key_prefix="t:")
    b.owner = "other-host:1"  # two replicas (the same pid here)
    assert a.acquire(0.0, 10.0)
    assert not b.acquire(0.0, 10.0)  # held
    assert a.acquire(0.0, 10.0)  # renewed by its owner
    assert a.leader(0.0) == a.owner
    a.release()
    assert b.acquire(0.0, 10.0)  # given up: taken at once
    a.release()  # not the holder: nothing happens
    assert b.leader(0.0) == b.owner
    # states round trip; the lock keeps the other writer out until it is released
    with a.locked():
        a.save({"r": MigrationState(stage=1, step=2, entered=5.0)})
        entered = threading.Event()

        def other() -> None:
            with b.locked():
                entered.set()

        t = threading.Thread(target=other)
        t.start()
        assert not entered.wait(0.3)  # held: b waits
    t.join(10)
    assert entered.is_set()
    assert b.load() == {"r": MigrationState(stage=1, step=2, entered=5.0)}


def test_without_redis_nobody_leads_and_nothing_is_read() -> None:
    gone = RedisMigrateStore("redis://127.0.0.1:1/0", key_prefix="t:", timeout=0.2)
    assert gone.acquire(0.0, 10.0) is False
    assert gone.load() == {}
    assert gone.leader(0.0) is None
    with pytest.raises(OSError, match="cannot"):
        gone.save({})


async def test_two_replicas_sharing_redis_advance_the_plan_once(
    make_proxy: MakeProxy,
    apps: tuple[str, NewService],  # noqa: F811 (the imported fixture)
    redis_server: RedisServer,
) -> None:
    legacy, new = apps
    redis = (
        "state:\n  file_poll: 200ms\n  backend: redis\n"
        f"  redis: {{url: '{redis_server.url}', key_prefix: 'pilot:'}}\n"
    )
    one = await make_proxy(config(legacy, new.url, top=redis))
    two = await make_proxy(config(legacy, new.url, top=redis))
    # A load balancer spreads users over both replicas; either may hold the lease (one
    # only), and it judges the plan on its own share of the traffic.
    view: dict[str, Any] = {}
    loads = [Load(one.url), Load(two.url)]
    deadline = time.monotonic() + DEADLINE
    async with aiohttp.ClientSession() as session:
        while view.get("status") != "done":
            assert time.monotonic() < deadline, f"the plan did not finish: {view}"
            for load in loads:
                await load.burst(session, 10)
            view = await views(one.admin_url, session)
    assert len(view["history"]) == 5
    counted = 0.0
    for replica in (one, two):
        registry = replica.server.metrics.registry
        for family in registry.collect():
            if family.name == "strangler_migration_transitions":
                counted += sum(s.value for s in family.samples if s.name.endswith("_total"))
    assert counted == 5  # exactly one process advanced the plan
    async with aiohttp.ClientSession() as s:
        answers = []
        for replica in (one, two):
            async with s.get(f"{replica.admin_url}/api/migrate/orders-read") as r:
                body = await r.json()
                answers.append((body["position"], body["status"], len(body["history"])))
    assert answers[0] == answers[1] == ("done", "done", 5)


def _requests(replica: RunningProxy) -> float:
    """The answers this replica's own registry counted on the plan's route."""
    return sum(
        s.value
        for family in replica.server.metrics.registry.collect()
        if family.name == "strangler_requests"
        for s in family.samples
        if s.name.endswith("_total") and s.labels["route"] == "orders-read"
    )


async def test_the_evaluator_counts_the_other_replicas_traffic(
    make_proxy: MakeProxy,
    apps: tuple[str, NewService],  # noqa: F811 (the imported fixture)
    redis_server: RedisServer,
) -> None:
    """Every request goes to the replica that does not evaluate: the plan still
    advances to done, on figures the evaluator read from the other replica's
    published counters (before, it judged its own traffic only: none here)."""
    legacy, new = apps
    redis = (
        "state:\n  file_poll: 200ms\n  backend: redis\n"
        f"  redis: {{url: '{redis_server.url}', key_prefix: 'spread:'}}\n"
    )
    one = await make_proxy(config(legacy, new.url, top=redis))
    two = await make_proxy(config(legacy, new.url, top=redis))
    deadline = time.monotonic() + DEADLINE
    while not (one.server.autopilot.leading or two.server.autopilot.leading):
        assert time.monotonic() < deadline, "nobody took the lease"
        await asyncio.sleep(0.05)  # the lease is taken at the first tick (0.25 s)
    leader, other = (one, two) if one.server.autopilot.leading else (two, one)
    load = Load(other.url)
    view: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        while view.get("status") != "done":
            assert time.monotonic() < deadline, f"the plan did not finish: {view}"
            await load.burst(session, 10)
            view = await views(leader.admin_url, session)
    assert leader.server.autopilot.leading  # the same replica judged the whole plan
    assert _requests(leader) == 0
    assert _requests(other) == load.sent
    assert [h["to"] for h in view["history"]][-1] == "done"
    assert all(a.status == 200 for a in load.answers)
