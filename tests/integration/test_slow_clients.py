"""Slow and idle clients cannot take the proxy down (issue 10 part 1).

A real proxy with short timeouts, attacked over raw sockets on 127.0.0.1 while a
normal client keeps asking: thousands of connections that send nothing, a slowloris
that sends its head a byte at a time, an upload that stalls, and more connections than
``limits.max_connections``. Counts and times are bounded (2,000 idle connections, a few
seconds each test); the test process's own soft descriptor limit is raised to fit.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import AsyncIterator
from typing import Final

import aiohttp
import pytest

from strangler.listener import raise_fd_limit
from tests.conftest import BASE_CONFIG, MakeProxy, RunningProxy, Upstream
from tests.test_hostile_requests import read_reply

HOST: Final = "127.0.0.1"
IDLE: Final = 2000
KEEPALIVE: Final = 2.0  # seconds: limits.keepalive_timeout in these tests
HEADER: Final = 1.0  # seconds: limits.header_timeout
BODY: Final = 1.0  # seconds: limits.body_timeout
SLACK: Final = 5.0  # scheduling slack on a loaded machine: the upper bound only

LIMITS: Final = (
    f"limits: {{keepalive_timeout: {KEEPALIVE}s, header_timeout: {HEADER}s, body_timeout: {BODY}s}}"
)


@pytest.fixture
def fd_room() -> None:
    """Room for 2,000 client sockets plus the proxy's side of each, in this process."""
    soft = raise_fd_limit()
    if soft < 3 * IDLE + 512:
        pytest.skip(f"open-file limit {soft} is too low for {IDLE} idle connections")


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def connections(proxy: RunningProxy, n: int) -> AsyncIterator[list[tuple[Conn, float]]]:
    """``n`` connections that send nothing, each with the time it was opened."""
    conns: list[tuple[Conn, float]] = []
    try:
        for first in range(0, n, 100):  # in batches: quick to open, but within the backlog
            opened = time.monotonic()  # before: a lifetime is never under-counted
            batch = await asyncio.gather(
                *(
                    asyncio.open_connection(HOST, proxy.server.proxy_port)
                    for _ in range(min(100, n - first))
                )
            )
            conns.extend((conn, opened) for conn in batch)
        yield conns
    finally:
        for (_, w), _opened in conns:
            w.close()


async def lifetime(reader: asyncio.StreamReader, opened: float, bound: float) -> float:
    """Seconds from ``opened`` until the proxy closed the connection having sent
    nothing; fails if it is still open ``bound`` seconds after ``opened``."""
    async with asyncio.timeout(bound - (time.monotonic() - opened)):
        assert await reader.read() == b""
    return time.monotonic() - opened


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the proxy sent before closing; fails if it is still open in time."""
    async with asyncio.timeout(seconds):
        return await reader.read()


async def normal_requests(proxy: RunningProxy, stop: asyncio.Event) -> int:
    """GET requests, one at a time, until ``stop``: every one must be answered."""
    answered = 0
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            async with session.get(f"{proxy.url}/ok", timeout=aiohttp.ClientTimeout(total=5)) as r:
                assert r.status == 200
                await r.read()
            answered += 1
            with contextlib.suppress(TimeoutError):  # a steady client, not a flood
                await asyncio.wait_for(stop.wait(), 0.05)
    return answered


async def slowloris(proxy: RunningProxy, gap: float) -> tuple[bytes, float]:
    """A head sent a byte every ``gap`` seconds, never finished: what came back, and
    after how long the proxy closed the connection."""
    reader, writer = await asyncio.open_connection(HOST, proxy.server.proxy_port)
    started = time.monotonic()
    answer = asyncio.ensure_future(reader.read())
    try:
        for byte in b"GET /ok HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"x" * 10_000:
            if answer.done():
                break
            with contextlib.suppress(ConnectionError):
                writer.write(bytes([byte]))
            # The slowloris's pace is the behaviour under test, not a wait for an event.
            await asyncio.wait([answer], timeout=gap)
        async with asyncio.timeout(SLACK):
            data = await answer
        return data, time.monotonic() - started
    finally:
        answer.cancel()
        writer.close()


async def test_idle_and_slowloris_are_closed_while_normal_clients_are_answered(
    make_proxy: MakeProxy, legacy: Upstream, fd_room: None
) -> None:
    proxy = await make_proxy(BASE_CONFIG.format(legacy=legacy.url, extra=LIMITS))
    stop = asyncio.Event()
    normal = asyncio.ensure_future(normal_requests(proxy, stop))
    try:
        async with connections(proxy, IDLE) as idle:
            loris = asyncio.ensure_future(slowloris(proxy, gap=0.1))
            lifetimes = await asyncio.gather(
                *(lifetime(r, opened, KEEPALIVE + SLACK) for (r, _), opened in idle)
            )
            # every idle connection closed by the proxy, none before keepalive_timeout
            assert min(lifetimes) >= KEEPALIVE - 0.1
            data, after = await loris
            assert data.split(b" ", 2)[1] == b"408"
            assert HEADER - 0.1 <= after <= HEADER + SLACK
            assert not normal.done()  # still asking, and answered (asserted per request)
    finally:
        stop.set()
    assert await normal > 0
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.admin_url}/healthz") as r:
        assert r.status == 200


@pytest.mark.parametrize(
    ("sent", "after", "answers"),
    [
        pytest.param(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n", KEEPALIVE, 1, id="keep-alive-idle"),
        pytest.param(
            b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789",
            BODY,
            0,
            id="stalled-upload",
        ),
    ],
)
async def test_connection_is_closed_after_its_timeout(
    make_proxy: MakeProxy, legacy: Upstream, sent: bytes, after: float, answers: int
) -> None:
    """Quietly: nothing is sent but the answers the requests were owed."""
    proxy = await make_proxy(BASE_CONFIG.format(legacy=legacy.url, extra=LIMITS))
    reader, writer = await asyncio.open_connection(HOST, proxy.server.proxy_port)
    try:
        writer.write(sent)
        started = time.monotonic()
        rest = await closed_within(reader, after + SLACK)
        assert time.monotonic() - started >= after - 0.1
        assert rest.count(b"HTTP/1.1 ") == answers
    finally:
        writer.close()


async def test_slow_but_steady_upload_is_not_cut(make_proxy: MakeProxy, legacy: Upstream) -> None:
    """body_timeout is the gap between two body bytes, not the whole upload."""
    proxy = await make_proxy(BASE_CONFIG.format(legacy=legacy.url, extra=LIMITS))
    reader, writer = await asyncio.open_connection(HOST, proxy.server.proxy_port)
    try:
        writer.write(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
        for byte in b"hello":
            writer.write(bytes([byte]))
            await asyncio.sleep(BODY / 2)  # the client's pace under test
        async with asyncio.timeout(SLACK):
            status = await reader.readuntil(b"\r\n")
        assert status.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
    assert legacy.recorder.seen[0].body == b"hello"


CAP: Final = 20
CAPPED: Final = f"limits: {{max_connections: {CAP}, keepalive_timeout: 60s}}"
REQUEST: Final = b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"


async def answered(reader: asyncio.StreamReader) -> int:
    """The status of one whole answer."""
    async with asyncio.timeout(SLACK):
        reply = await read_reply(reader)
    assert reply is not None
    return reply.status


async def test_accept_pauses_at_max_connections_and_admin_stays_reachable(
    make_proxy: MakeProxy, legacy: Upstream
) -> None:
    """With every connection busy (here: in the middle of a request head), the next
    client waits in the backlog, neither refused nor answered, until one closes."""
    proxy = await make_proxy(BASE_CONFIG.format(legacy=legacy.url, extra=CAPPED))
    async with connections(proxy, 0) as held:
        for _ in range(CAP):  # each one accepted (answered), then busy
            reader, writer = await asyncio.open_connection(HOST, proxy.server.proxy_port)
            held.append(((reader, writer), time.monotonic()))
            writer.write(REQUEST)
            assert await answered(reader) == 200
            writer.write(b"GET /ok HTTP/1.1\r\nHost: a\r\n")  # a head, not finished
        reader, writer = await asyncio.open_connection(HOST, proxy.server.proxy_port)
        try:
            writer.write(REQUEST)
            waiting = asyncio.ensure_future(answered(reader))
            done, _ = await asyncio.wait([waiting], timeout=0.5)
            assert not done  # waits in the backlog: neither answered nor refused
            async with aiohttp.ClientSession() as s, s.get(f"{proxy.admin_url}/healthz") as r:
                assert r.status == 200
            held[0][0][1].close()  # one held connection goes: the waiting one is accepted
            assert await waiting == 200
        finally:
            writer.close()


async def test_idle_connections_make_room_at_max_connections(
    make_proxy: MakeProxy, legacy: Upstream
) -> None:
    """At the cap, idle keep-alive connections are closed (oldest first) so a new
    client is answered at once; the busy ones are left alone."""
    proxy = await make_proxy(BASE_CONFIG.format(legacy=legacy.url, extra=CAPPED))
    async with connections(proxy, CAP) as held:
        for (reader, writer), _ in held:
            writer.write(REQUEST)
            assert await answered(reader) == 200
        busy_reader, busy_writer = held[-1][0]
        busy_writer.write(b"GET /ok HTTP/1.1\r\nHost: a\r\n")  # the newest: busy
        reader, writer = await asyncio.open_connection(HOST, proxy.server.proxy_port)
        try:
            writer.write(REQUEST)
            assert await answered(reader) == 200
        finally:
            writer.close()
        async with asyncio.timeout(SLACK):  # the oldest idle one was closed for it
            assert await held[0][0][0].read() == b""
        busy_writer.write(b"\r\n")  # the busy one finishes its head: still served
        assert await answered(busy_reader) == 200


def test_raise_fd_limit_lifts_the_soft_limit_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 1024), hard))
    got = raise_fd_limit()
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == got
    assert got == hard or hard == resource.RLIM_INFINITY
