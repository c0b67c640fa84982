"""``RedisStateStore`` against a real ``redis-server`` on a free 127.0.0.1 port.

The ``redis_server`` fixture starts Debian's ``redis-server`` in a temporary
directory (no RDB snapshots; append-only file only when a test asks for
persistence), waits for ``PING`` with a bounded poll, and kills it at the end. A
test can ``kill()`` it (SIGKILL: a crash) and ``start()`` it again on the same port.
Also here: the ``state:`` config keys for the Redis backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import doctest
import json
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest
import redis
from prometheus_client import CollectorRegistry

from strangler.config import load_config_text
from strangler.config.model import RedisState
from strangler.errors import ConfigError
from strangler.release import redis_store
from strangler.release.controls import ReleaseControls
from strangler.release.redis_store import (
    ALL,
    RedisStateStore,
    StateStoreCollector,
    StateStoreUnavailable,
)
from strangler.release.state import RouteState, StateFileError, StateStore
from tests.serve_support import free_port

HOST: Final = "127.0.0.1"
START_DEADLINE: Final = 10.0  # seconds redis-server gets to answer PING
POLL: Final = 0.02  # seconds between PING tries, waited on the process itself
APT_HINT: Final = "apt-get install -y --no-install-recommends redis-server"


# ---------------------------------------------------------------------------- redis-server


def _pong(port: int) -> bool:
    """True once the server on ``port`` answers PING (not while it loads its data)."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """One ``redis-server`` process; ``persistent``: an append-only file, fsynced on
    every write, in ``workdir`` (so a killed server comes back with every write)."""

    port: int
    workdir: Path
    persistent: bool = False
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.workdir / "redis.log"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(f"redis-server is not installed; on Debian: {APT_HINT}")
        durability = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        args = [
            binary,
            "--port", str(self.port),
            "--bind", HOST,
            "--save", "",
            "--dir", str(self.workdir),
            "--logfile", str(self.log),
            "--daemonize", "no",
            *durability,
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, cwd=self.workdir, stdout=subprocess.DEVNULL)
        for _ in range(int(START_DEADLINE / POLL)):
            if _pong(self.port):
                return
            # The pause is a wait on redis-server itself: it returns at once (with the
            # exit code) when the server died on start, instead of sleeping blind.
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.proc.wait(timeout=POLL)
                pytest.fail(f"redis-server exited with {code}:\n{self._log_text()}")
        pytest.fail(f"redis-server did not answer PING in {START_DEADLINE}s:\n{self._log_text()}")

    def kill(self) -> None:
        """SIGKILL: a crash, no shutdown save."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def _log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else "(no log)"


@contextlib.contextmanager
def running_redis(workdir: Path, *, persistent: bool = False) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), workdir, persistent=persistent)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A throwaway redis-server (nothing written to disk)."""
    workdir = tmp_path / "redis"
    workdir.mkdir()
    with running_redis(workdir) as server:
        yield server


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server with ``appendonly yes`` (fsync always): survives ``kill()``."""
    workdir = tmp_path / "redis-aof"
    workdir.mkdir()
    with running_redis(workdir, persistent=True) as server:
        yield server


MakeStore = Callable[..., RedisStateStore]


@pytest.fixture
def stores() -> Iterator[Callable[[RedisServer], RedisStateStore]]:
    """``stores(server, **kw)``: replicas' stores sharing one key prefix; closed after."""
    made: list[RedisStateStore] = []
    prefix = f"test-{uuid.uuid4().hex[:8]}:"

    def make(server: RedisServer, **kw: object) -> RedisStateStore:
        store = RedisStateStore(server.url, key_prefix=prefix, **kw)  # type: ignore[arg-type]
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def raw(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, decode_responses=True)


def killed(s: RouteState) -> None:
    s.kill(True, at=1000.0)


def bump(s: RouteState) -> None:
    """Kill switch on, ``since`` one more: a read-modify-write a lost update would show."""
    s.kill(True, at=s.since + 1.0)


# ---------------------------------------------------------------------------- basics


def test_round_trip_and_layout(redis_server: RedisServer, stores: MakeStore) -> None:
    a = stores(redis_server)
    assert a.load() == {}
    assert a.version == 0
    change = a.update("inv", killed)
    assert change.changed
    assert change.before == RouteState()
    assert change.after == RouteState(killed=True, since=1000.0)
    a.update("pay", lambda s: s.set_percent(0.25, at=5.0))
    assert a.load() == {
        "inv": RouteState(killed=True, since=1000.0),
        "pay": RouteState(percent_override=0.25, since=5.0),
    }
    # Back to the default: the route leaves the hash.
    change = a.update("pay", lambda s: s.set_percent(None, at=6.0))
    assert change.routes == {"inv": RouteState(killed=True, since=1000.0)}
    # The documented layout, as another tool sees it.
    with raw(redis_server) as r:
        assert r.hgetall(f"{a.key_prefix}routes") == {
            "inv": json.dumps(RouteState(killed=True, since=1000.0).to_dict(), sort_keys=True)
        }
        assert r.get(f"{a.key_prefix}version") == "3"
    a.save({"x": RouteState(guard_tripped=True, guard_reason="p99", since=7.0), "y": RouteState()})
    assert a.load() == {"x": RouteState(guard_tripped=True, guard_reason="p99", since=7.0)}
    assert a.version == 4
    assert a.healthy
    assert a.last_error is None


def test_from_config_and_status_hide_the_password() -> None:
    store = RedisStateStore.from_config(
        RedisState(url="redis://:hunter2@127.0.0.1:1/3", key_prefix="p:", resync=2.0)
    )
    protocol: StateStore = store  # mypy checks it is a StateStore
    assert protocol is store
    try:
        assert store.resync == 2.0
        assert store.key_prefix == "p:"
        status = store.status()
        assert status["url"] == "redis://:***@127.0.0.1:1/3"
        assert "hunter2" not in repr(status)
        assert status["healthy"] is False  # nothing asked yet
    finally:
        store.close()
    assert doctest.testmod(redis_store).failed == 0


def test_a_group_write_is_one_transaction(redis_server: RedisServer, stores: MakeStore) -> None:
    """A canary group's routes change in one MULTI/EXEC: one version, one message, and a
    replica's load sees all of them or none; a change that raises writes nothing."""
    a, b = stores(redis_server), stores(redis_server)
    a.update("other", killed)
    b.load()
    results = a.update_routes(["r1", "r2", "r3"], killed)
    assert [r.route for r in results] == ["r1", "r2", "r3"]
    assert all(r.changed for r in results)
    assert a.version == 2  # one write, one version
    assert b.changed()
    assert set(b.load()) == {"other", "r1", "r2", "r3"}

    calls: list[str] = []

    def refuse_second(s: RouteState) -> None:
        calls.append("called")
        if len(calls) == 2:
            raise ValueError("the second route refuses")
        s.set_percent(0.5, at=2000.0)

    with pytest.raises(ValueError, match="refuses"):
        a.update_routes(["r1", "r2"], refuse_second)
    assert a.load() == b.load()
    assert all(s.percent_override is None for s in a.load().values())
    assert a.version == 2


def test_a_replica_loading_during_group_writes_never_sees_half(
    redis_server: RedisServer, stores: MakeStore
) -> None:
    writer, reader = stores(redis_server), stores(redis_server)
    group = ("r1", "r2", "r3")
    done = threading.Event()
    seen: list[frozenset[str]] = []

    def read() -> None:
        while not done.is_set():
            seen.append(frozenset(n for n, s in reader.load().items() if s.killed))

    def alive(s: RouteState) -> None:
        s.kill(False, at=1.0)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for i in range(20):
            writer.update_routes(group, killed if i % 2 == 0 else alive)
    finally:
        done.set()
        thread.join()
    assert set(seen) <= {frozenset(), frozenset(group)}
    assert len(seen) > 1


def test_version_and_changed(redis_server: RedisServer, stores: MakeStore) -> None:
    a, b = stores(redis_server), stores(redis_server)
    assert a.load() == b.load() == {}
    assert not a.changed()
    assert not b.changed()
    a.update("inv", killed)
    assert not a.changed()  # its own write
    assert b.changed()
    assert b.load() == {"inv": RouteState(killed=True, since=1000.0)}
    assert not b.changed()
    assert a.version == b.version == 1
    b.update("inv", lambda s: s.kill(False, at=2.0))
    assert a.changed()
    assert a.load() == {}
    assert a.version == 2


def test_unreadable_state_is_a_state_file_error(
    redis_server: RedisServer, stores: MakeStore
) -> None:
    a = stores(redis_server)
    with raw(redis_server) as r:
        r.hset(f"{a.key_prefix}routes", "inv", "{not json")
    with pytest.raises(StateFileError, match="route 'inv' is not valid JSON"):
        a.load()
    assert not a.healthy
    assert a.last_error is not None
    with raw(redis_server) as r:
        r.hset(f"{a.key_prefix}routes", "inv", json.dumps({"killed": "yes"}))
    with pytest.raises(StateFileError, match="killed and guard_tripped must be true or false"):
        a.load()
    with raw(redis_server) as r:
        r.delete(f"{a.key_prefix}routes")
        r.set(f"{a.key_prefix}version", "seven")
    with pytest.raises(StateFileError, match="version in Redis is not a number"):
        a.changed()


# ---------------------------------------------------------------------------- atomicity


def test_concurrent_updates_from_threads_lose_nothing(
    redis_server: RedisServer, stores: MakeStore
) -> None:
    threads, rounds = 6, 30
    replicas = [stores(redis_server) for _ in range(threads)]
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            start.wait(timeout=10)
            for j in range(rounds):
                replicas[i].update("shared", bump)
                replicas[i].update(f"own-{i}-{j}", killed)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=60)
    assert not errors
    state = replicas[0].load()
    assert state["shared"].since == threads * rounds  # every read-modify-write counted
    assert len(state) == 1 + threads * rounds  # no route lost to another writer
    assert replicas[0].version == 2 * threads * rounds


_PROCESS: Final = """
import sys
import redis
from strangler.release.redis_store import RedisStateStore

url, prefix, name, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store = RedisStateStore(url, key_prefix=prefix)
signal = redis.Redis.from_url(url)
signal.rpush(prefix + "ready", name)
assert signal.blpop([prefix + "go"], timeout=30) is not None  # start together


def bump(s):
    s.kill(True, at=s.since + 1.0)


for j in range(rounds):
    store.update("shared", bump)
    store.update(f"{name}-{j}", lambda s: s.kill(True, at=1.0))
store.close()
"""


def test_concurrent_updates_from_two_processes_lose_nothing(
    redis_server: RedisServer, stores: MakeStore
) -> None:
    rounds = 150
    store = stores(redis_server)
    prefix = store.key_prefix
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PROCESS, redis_server.url, prefix, name, str(rounds)],
            stderr=subprocess.PIPE,
        )
        for name in ("p1", "p2")
    ]
    try:
        with raw(redis_server) as r:
            for _ in procs:  # both connected: release them at once
                assert r.blpop([f"{prefix}ready"], timeout=30) is not None
            r.rpush(f"{prefix}go", "1", "1")
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err.decode()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    state = store.load()
    assert state["shared"].since == 2 * rounds
    assert {n for n in state if n != "shared"} == {
        f"{name}-{j}" for name in ("p1", "p2") for j in range(rounds)
    }


# ---------------------------------------------------------------------------- propagation


@contextlib.asynccontextmanager
async def subscribed(store: RedisStateStore) -> AsyncIterator[AsyncIterator[str]]:
    """``store.subscribe()``, its first ``"*"`` (subscribed) consumed; closed after."""
    changes = store.subscribe()
    try:
        assert await asyncio.wait_for(anext(changes), 10) == ALL
        yield changes
    finally:
        await changes.aclose()  # type: ignore[attr-defined]


async def test_subscribe_reports_other_writers_within_a_second(
    redis_server: RedisServer, stores: MakeStore
) -> None:
    a, b = stores(redis_server), stores(redis_server)
    async with subscribed(b) as changes:
        await asyncio.to_thread(b.update, "own", killed)  # b's own write: not reported
        started = time.monotonic()
        await asyncio.to_thread(a.update, "inv", killed)
        assert await asyncio.wait_for(anext(changes), 1.0) == "inv"
        assert time.monotonic() - started < 1.0
        await asyncio.to_thread(a.save, {})
        assert await asyncio.wait_for(anext(changes), 1.0) == ALL
        assert await asyncio.to_thread(b.changed)
        assert await asyncio.to_thread(b.load) == {}


async def test_subscribe_resubscribes_after_redis_comes_back(
    redis_server: RedisServer, stores: MakeStore
) -> None:
    a, b = stores(redis_server), stores(redis_server)
    async with subscribed(b) as changes:
        redis_server.kill()
        redis_server.start()
        # Messages may have been lost meanwhile: it says "look at everything".
        assert await asyncio.wait_for(anext(changes), 15) == ALL
        await asyncio.to_thread(a.update, "inv", killed)
        assert await asyncio.wait_for(anext(changes), 1.0) == "inv"


def test_resync_rereads_everything_after_resync_seconds(
    redis_server: RedisServer, stores: MakeStore
) -> None:
    now = [0.0]
    a = stores(redis_server, resync=5.0, clock=lambda: now[0])
    assert a.load() == {}
    # A change this store cannot see through the version (written by hand, or a
    # version that happens to match after a Redis swap).
    with raw(redis_server) as r:
        r.hset(f"{a.key_prefix}routes", "inv", json.dumps({"killed": True, "since": 3.0}))
    now[0] = 4.9
    assert not a.changed()
    now[0] = 5.0
    assert a.changed()
    assert a.load() == {"inv": RouteState(killed=True, since=3.0)}
    assert not a.changed()


# ---------------------------------------------------------------------------- losing Redis


async def test_redis_down_keeps_the_last_state_and_refuses_writes(
    durable_redis: RedisServer, stores: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    routes = {"inv": None, "pay": None}
    writer = ReleaseControls(stores(durable_redis), None)
    reader_store = stores(durable_redis)
    reader = ReleaseControls(reader_store, None)
    writer.start(routes)
    reader.start(routes)
    await writer.kill("inv", "test")
    assert await reader.sync() == ["inv"]

    durable_redis.kill()
    with caplog.at_level(logging.ERROR, logger="strangler.release"):
        assert await reader.sync() == []
    assert "keeping what this worker knows" in caplog.text
    assert reader.state.for_route("inv").killed  # still serving with what it knew
    assert reader_store.status()["healthy"] is False
    assert f"127.0.0.1:{durable_redis.port}" in str(reader_store.status()["last_error"])
    with pytest.raises(StateStoreUnavailable, match="cannot write the release state"):
        await writer.kill("pay", "test")
    assert not writer.state.for_route("pay").killed  # nothing pretended
    with pytest.raises(StateFileError):
        reader_store.load()
    synced_before = reader_store.last_sync

    durable_redis.start()  # same port, same append-only file
    assert await reader.sync() == []  # re-read everything: nothing lost, nothing new
    assert reader.state.for_route("inv").killed
    assert reader_store.status()["healthy"] is True
    assert reader_store.status()["last_error"] is None
    assert reader_store.last_sync is not None
    assert synced_before is not None
    assert reader_store.last_sync > synced_before
    await writer.kill("pay", "test")
    assert await reader.sync() == ["pay"]


def test_on_reconnect_the_next_check_rereads_everything(
    durable_redis: RedisServer, stores: MakeStore
) -> None:
    a = stores(durable_redis, resync=3600.0)
    a.update("inv", killed)
    durable_redis.kill()
    with pytest.raises(StateStoreUnavailable):
        a.changed()
    durable_redis.start()
    assert a.changed()  # same version, but it was cut off: read it all again
    assert a.load() == {"inv": RouteState(killed=True, since=1000.0)}
    assert not a.changed()


def test_redis_restarted_empty_gets_the_last_known_state_back(
    redis_server: RedisServer, stores: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = stores(redis_server), stores(redis_server)
    a.update("inv", killed)
    a.update("pay", lambda s: s.set_percent(0.5, at=2.0))
    assert b.load() == a.load()
    redis_server.kill()
    redis_server.start()  # no persistence: it comes back empty
    with caplog.at_level(logging.ERROR, logger="strangler.release.redis"):
        restored = a.load()
    assert "Redis had lost the release state" in caplog.text
    assert restored == {
        "inv": RouteState(killed=True, since=1000.0),
        "pay": RouteState(percent_override=0.5, since=2.0),
    }
    assert not b.changed()  # same version, same state: nothing to do
    assert b.load() == restored
    fresh = stores(redis_server)
    assert fresh.load() == restored
    assert fresh.version == 2


def test_a_write_to_a_redis_restarted_empty_keeps_the_other_routes(
    redis_server: RedisServer, stores: MakeStore
) -> None:
    a = stores(redis_server)
    a.update("inv", killed)
    redis_server.kill()
    redis_server.start()
    change = a.update("pay", killed)
    assert set(change.routes) == {"inv", "pay"}
    assert stores(redis_server).load() == change.routes


def test_collector_reports_up_and_last_sync(redis_server: RedisServer, stores: MakeStore) -> None:
    a = stores(redis_server)
    registry = CollectorRegistry()
    registry.register(StateStoreCollector(a))
    up = "strangler_state_store_up"
    synced = "strangler_state_store_last_sync_timestamp_seconds"
    assert registry.get_sample_value(up, {"backend": "redis"}) == 0.0
    assert registry.get_sample_value(synced, {"backend": "redis"}) is None
    a.load()
    assert registry.get_sample_value(up, {"backend": "redis"}) == 1.0
    assert registry.get_sample_value(synced, {"backend": "redis"}) == a.last_sync
    redis_server.kill()
    with pytest.raises(StateStoreUnavailable):
        a.changed()
    assert registry.get_sample_value(up, {"backend": "redis"}) == 0.0


# ---------------------------------------------------------------------------- config


def _problems(state: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(f"upstreams: {{legacy: http://l:8000}}\nstate:\n{state}", "m.yaml")
    return [str(p) for p in info.value.problems]


def test_config_defaults_to_the_file_backend() -> None:
    config = load_config_text("upstreams: {legacy: http://l:8000}\n")
    assert config.state.backend == "file"
    assert config.state.redis == RedisState()


def test_config_redis_backend() -> None:
    config = load_config_text(
        "upstreams: {legacy: http://l:8000}\n"
        "state:\n"
        "  file_poll: 250ms\n"
        "  backend: redis\n"
        "  redis: {url: 'redis://:pw@cache.internal:6380/2', key_prefix: 'shop:', resync: 10s}\n"
    )
    assert config.state.backend == "redis"
    assert config.state.file_poll == 0.25
    assert config.state.redis == RedisState(
        url="redis://:pw@cache.internal:6380/2", key_prefix="shop:", resync=10.0
    )
    unix = load_config_text(
        "upstreams: {legacy: http://l:8000}\n"
        "state: {backend: redis, redis: {url: 'unix:///run/redis/redis.sock?db=1'}}\n"
    )
    assert unix.state.redis.url == "unix:///run/redis/redis.sock?db=1"
    assert unix.state.redis.key_prefix == "strangler:"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://cache:6379", "has scheme 'http'; use redis://, rediss:// (TLS) or unix://"),
        ("cache:6379", "must start with redis://, rediss:// or unix://"),
        ("redis://cache:99999/0", "has an invalid port"),
        ("redis://cache:6379/zero", "the database in 'redis://cache:6379/zero' must be a number"),
        ("redis://:s3cr3t@cache:6379/x", "'redis://:***@cache:6379/x'"),
        ("redis://cache:6379/0?socket_timeout=1", "must not have a query string"),
        ("redis:///0", "has no host"),
        ("unix://run/redis.sock", "must name the socket by its absolute path"),
        ("unix:///run/redis.sock?ssl=1", "the only query a unix:// URL takes here is ?db=N"),
    ],
)
def test_config_bad_redis_url(url: str, problem: str) -> None:
    (found,) = _problems(f"  backend: redis\n  redis:\n    url: '{url}'\n")
    assert found.startswith("m.yaml:5: state.redis.url: ")
    assert problem in found
    assert "s3cr3t" not in found


def test_config_state_problems_point_at_their_lines() -> None:
    found = _problems(
        "  backend: redsi\n"
        "  redis:\n"
        "    url: redis://127.0.0.1:6379/0\n"
        "    prefix: 'x:'\n"
        "    resync: 0s\n"
        "    key_prefix: ''\n"
    )
    assert found == [
        "m.yaml:3: state.backend must be one of file, redis, got 'redsi' "
        "(hint: did you mean 'redis'?)",
        "m.yaml:6: unknown key 'prefix' in state.redis (hint: did you mean 'key_prefix'?)",
        "m.yaml:7: state.redis.resync must be more than 0 and at most 1h, got 0s "
        "(hint: how often each replica re-reads the whole state from Redis, like 5s)",
        "m.yaml:8: state.redis.key_prefix must not be empty (hint: like 'strangler:')",
    ]


def test_config_redis_settings_without_the_redis_backend_are_refused() -> None:
    (found,) = _problems("  redis: {url: 'redis://127.0.0.1:6379/0'}\n")
    assert found == (
        "m.yaml:3: state.redis is set but state.backend is file, so it would be ignored "
        "(hint: add 'backend: redis' to state (or remove state.redis))"
    )
    assert _problems("  backend: redis\n  redis: [x]\n") == [
        "m.yaml:4: state.redis must be a mapping, got a list"
    ]
