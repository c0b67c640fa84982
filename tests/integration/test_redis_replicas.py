"""Two replicas sharing their release state through Redis (``state.backend: redis``).

Two real ``strangler serve`` processes, each with its own ``--state-dir`` and ports,
in front of the same legacy and new upstreams, and one real ``redis-server`` with an
append-only file. A rollback through replica A's admin API is honoured by replica B
within one second; Redis killed and started again loses nothing, B keeps serving
what it knew meanwhile, and a write while Redis is down fails loudly (503).
Polls of the other processes are bounded; nothing sleeps blind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Final

import aiohttp
import pytest

from tests.conftest import Upstream
from tests.serve_support import Serving, free_port, serve
from tests.test_redis_store import RedisServer, running_redis

TOKEN: Final = "replica-test-token"
AUTH: Final = {"Authorization": f"Bearer {TOKEN}"}
PROPAGATION: Final = 1.0  # seconds a change may take to reach the other replica
POLL: Final = 0.02  # seconds between looks at the other process


def replica_config(port: int, admin: int, legacy: Upstream, new: Upstream, redis_url: str) -> str:
    return f"""
listen: 127.0.0.1:{port}
admin: {{listen: 127.0.0.1:{admin}}}
access_log: {{format: off}}
upstreams:
  legacy: {legacy.url}
  billing: {new.url}
routes:
  - {{name: inv, owner: t, match: {{path_prefix: /inv}}, to: billing}}
state:
  file_poll: 500ms
  backend: redis
  redis: {{url: '{redis_url}', key_prefix: 'replicas-test:', resync: 5s}}
"""


@pytest.fixture
async def redis_aof(tmp_path: Path) -> AsyncIterator[RedisServer]:
    workdir = tmp_path / "redis"
    workdir.mkdir()
    with running_redis(workdir, persistent=True) as server:
        yield server


async def until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Poll ``check`` (another process's answer) until true; the seconds it took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            raise AssertionError(f"{what}: not within {within}s")
        await asyncio.sleep(POLL)  # a bounded poll of another process
    return time.monotonic() - started


async def test_replicas_share_rollbacks_through_redis_and_survive_its_restart(
    tmp_path: Path,
    legacy: Upstream,
    newsvc: Upstream,
    redis_aof: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRANGLER_ADMIN_TOKEN", TOKEN)
    replicas = []
    async with AsyncExitStack() as stack:
        for name in ("a", "b"):
            port, admin = free_port(), free_port()
            config = tmp_path / f"{name}.yaml"
            config.write_text(replica_config(port, admin, legacy, newsvc, redis_aof.url))
            state = ("--state-dir", str(tmp_path / f"state-{name}"))
            replicas.append(await stack.enter_async_context(serve("--config", str(config), *state)))
        a, b = replicas
        s = await stack.enter_async_context(aiohttp.ClientSession())

        async def served_by(r: Serving) -> str:
            async with s.get(r.url + "/inv/1") as resp:
                assert resp.status == 200, await resp.text()
                return str((await resp.json())["served_by"])

        async def store(r: Serving) -> dict[str, object]:
            async with s.get(r.admin_url + "/readyz") as resp:
                assert resp.status == 200  # Redis down never takes a replica out
                details = (await resp.json())["state_store"]
                assert isinstance(details, dict)
                return details

        async def admin_post(r: Serving, path: str) -> int:
            async with s.post(r.admin_url + path, headers=AUTH) as resp:
                return resp.status

        async def b_serves(side: str) -> bool:
            return await served_by(b) == side

        assert await served_by(a) == await served_by(b) == "new"
        assert (await store(b))["healthy"] is True

        # A rollback through A reaches B within a second.
        assert await admin_post(a, "/api/routes/inv/rollback") == 200
        took = await until(lambda: b_serves("legacy"), PROPAGATION, "B honours A's rollback")
        assert took < PROPAGATION
        assert await served_by(a) == "legacy"

        # Redis goes away: B notices, keeps serving what it knew; writes fail loudly.
        redis_aof.kill()

        async def b_sees_redis_down() -> bool:
            return (await store(b))["healthy"] is False

        await until(b_sees_redis_down, 5.0, "B reports the state store down")
        details = await store(b)
        assert f"127.0.0.1:{redis_aof.port}" in str(details["last_error"])
        async with s.get(b.admin_url + "/metrics") as resp:
            assert 'strangler_state_store_up{backend="redis"} 0.0' in await resp.text()
        assert await served_by(b) == "legacy"
        assert await admin_post(a, "/api/routes/inv/enable") == 503
        assert await served_by(a) == "legacy"  # the refused write changed nothing
        # A replica that never knew the state refuses to start rather than guess.
        port, admin = free_port(), free_port()
        config = tmp_path / "c.yaml"
        config.write_text(replica_config(port, admin, legacy, newsvc, redis_aof.url))
        async with serve("--config", str(config), ready=False) as c:
            assert await c.exited(30) == 1
            assert "cannot read the release state, not starting" in c.log_text()

        # Redis is back with its append-only file: nothing lost, B still honours it.
        redis_aof.start()

        async def b_sees_redis_up() -> bool:
            return (await store(b))["healthy"] is True

        await until(b_sees_redis_up, 5.0, "B reports the state store back")
        assert await served_by(b) == "legacy"
        assert await served_by(a) == "legacy"

        # And changes flow again, within a second.
        assert await admin_post(a, "/api/routes/inv/enable") == 200
        took = await until(lambda: b_serves("new"), PROPAGATION, "B honours A's enable")
        assert took < PROPAGATION
        async with s.get(b.admin_url + "/metrics") as resp:
            assert 'strangler_state_store_up{backend="redis"} 1.0' in await resp.text()
