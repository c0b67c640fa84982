"""The HTTP/1.1 upstream client against scripted raw servers on 127.0.0.1.

Each server answers with exact bytes, so framing corner cases (HEAD, 1xx,
close-delimited bodies, stale keep-alive connections, garbage) are tested precisely.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from multidict import CIMultiDict

from strangler.errors import ForwardError, ForwardErrorKind, ForwardStage
from strangler.forward.h1 import HIGH_WATER, H1Pool

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


@dataclass
class Raw:
    port: int
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return head + body


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Script], Awaitable[Raw]]]:
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> Raw:
        raw = Raw(0)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            raw.connections += 1
            try:
                await script(reader, writer, raw.connections)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        raw.port = server.sockets[0].getsockname()[1]
        return raw

    yield start
    for s in servers:
        s.close()
        await s.wait_closed()


def pool(port: int, read_timeout: float | None = 5.0) -> H1Pool:
    return H1Pool("up", "127.0.0.1", port, limit=8, connect_timeout=2.0, read_timeout=read_timeout)


def hdrs() -> CIMultiDict[str]:
    return CIMultiDict({"Host": "x"})


async def fetch(p: H1Pool, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    async def gen() -> AsyncIterator[bytes]:
        assert body is not None
        yield body

    h = hdrs()
    if body is not None:
        h["Content-Length"] = str(len(body))
    resp = await p.send(
        method, "/", h, gen() if body is not None else None, retry_stale=body is None
    )
    try:
        data = b"".join([c async for c in resp.iter_body()])
    finally:
        resp.release()
    return resp.status, data


async def test_keep_alive_reuses_one_connection(
    raw_server: Callable[[Script], Awaitable[Raw]],
) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        while True:
            await read_request(r)
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await w.drain()

    raw = await raw_server(script)
    p = pool(raw.port)
    for _ in range(5):
        assert await fetch(p) == (200, b"ok")
    assert raw.connections == 1
    await p.close()


async def test_head_then_get_on_the_same_connection(
    raw_server: Callable[[Script], Awaitable[Raw]],
) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")  # HEAD: no body follows
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
        await w.drain()
        await r.read()

    raw = await raw_server(script)
    p = pool(raw.port)
    assert await fetch(p, "HEAD") == (200, b"")
    assert await fetch(p) == (200, b"abc")
    assert raw.connections == 1
    await p.close()


async def test_interim_100_is_skipped_and_chunked_is_decoded(
    raw_server: Callable[[Script], Awaitable[Raw]],
) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        w.write(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n"
            b"X-A: 1\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        await w.drain()
        await r.read()

    raw = await raw_server(script)
    p = pool(raw.port)
    resp = await p.send("GET", "/", hdrs(), None, retry_stale=True)
    assert resp.status == 201
    assert resp.headers["X-A"] == "1"
    assert b"".join([c async for c in resp.iter_body()]) == b"abcde"
    resp.release()
    await p.close()


async def test_close_delimited_body(raw_server: Callable[[Script], Awaitable[Raw]]) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        w.write(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
        await w.drain()

    raw = await raw_server(script)
    p = pool(raw.port)
    assert await fetch(p) == (200, b"until the end")
    await p.close()


async def test_stale_keep_alive_connection_is_retried_for_bodyless_requests(
    raw_server: Callable[[Script], Awaitable[Raw]],
) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await w.drain()
        # then close without saying so: the next request on this connection meets a reset

    raw = await raw_server(script)
    p = pool(raw.port)
    assert await fetch(p) == (200, b"ok")
    assert await fetch(p) == (200, b"ok")  # retried on a fresh connection
    assert raw.connections == 2
    assert await fetch(p) == (200, b"ok")
    with pytest.raises(ForwardError) as e:  # a body is never re-sent
        await fetch(p, "POST", b"data")
    assert e.value.kind is ForwardErrorKind.RESET
    await p.close()


async def test_bytes_on_an_idle_connection_retire_it(
    raw_server: Callable[[Script], Awaitable[Raw]],
) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        while True:
            await read_request(r)
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + str(n).encode())
            if n == 1:  # a stray response the client never asked for
                w.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
            await w.drain()

    raw = await raw_server(script)
    p = pool(raw.port)
    assert await fetch(p) == (200, b"1")
    assert await fetch(p) == (200, b"2")  # not the stray 408
    await p.close()


async def test_garbage_is_a_protocol_error(raw_server: Callable[[Script], Awaitable[Raw]]) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        w.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await w.drain()
        await r.read()

    raw = await raw_server(script)
    p = pool(raw.port)
    with pytest.raises(ForwardError) as e:
        await fetch(p)
    assert e.value.kind is ForwardErrorKind.PROTOCOL
    assert e.value.stage is ForwardStage.RESPONSE_HEADERS
    await p.close()


async def test_read_timeout_and_refused(raw_server: Callable[[Script], Awaitable[Raw]]) -> None:
    never = asyncio.Event()

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        await never.wait()

    raw = await raw_server(script)
    p = pool(raw.port, read_timeout=0.1)
    with pytest.raises(ForwardError) as e:
        await fetch(p)
    assert e.value.kind is ForwardErrorKind.TIMEOUT
    await p.close()
    s = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = s.sockets[0].getsockname()[1]
    s.close()
    await s.wait_closed()
    with pytest.raises(ForwardError) as e:
        await fetch(pool(port))
    assert (e.value.kind, e.value.stage) == (ForwardErrorKind.REFUSED, ForwardStage.CONNECT)


async def test_large_body_pauses_reading_until_consumed(
    raw_server: Callable[[Script], Awaitable[Raw]],
) -> None:
    size = 8 * 1024 * 1024

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            w.write(b"x" * 65536)
            await w.drain()
        await r.read()

    raw = await raw_server(script)
    p = pool(raw.port)
    resp = await p.send("GET", "/", hdrs(), None, retry_stale=True)
    body = resp.iter_body()
    first = await body.__anext__()
    # The server blocks on drain: the client buffered no more than the high-water mark.
    conn = resp._conn  # the one white-box look: what is buffered while unread
    await asyncio.sleep(0)
    assert conn.buffered <= 512 * 1024 + 65536
    total = len(first) + sum([len(c) async for c in body])
    assert total == size
    resp.release()
    await p.close()


async def test_an_answer_that_arrived_whole_while_paused_leaves_reading_on(
    raw_server: Callable[[Script], Awaitable[Raw]],
) -> None:
    """The hang after a large upload: an answer over the high-water mark whose last
    bytes arrive in the read that pauses reading is complete at once, so it is taken
    whole (``read_buffered``, the relay's one-write path). The connection must be
    read again before it is pooled, or the next answer on it sits unread in the
    socket until the read timeout (60 s by default; a client gives up first)."""
    size = HIGH_WATER + 3
    last_bytes = asyncio.Event()

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        w.write(b"x" * HIGH_WATER)  # up to the mark: not paused yet
        await w.drain()
        await last_bytes.wait()
        w.write(b"xyz")  # one segment: crosses the mark and ends the answer
        await w.drain()
        while True:
            await read_request(r)
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await w.drain()

    raw = await raw_server(script)
    p = pool(raw.port, read_timeout=None)  # a hang is caught by the bound below
    resp = await p.send("GET", "/", hdrs(), None, retry_stale=True)
    conn = resp._conn  # white-box: the state that the bug left behind
    while conn.buffered < HIGH_WATER:
        await conn.wait()
    assert conn.reading()
    last_bytes.set()
    while not resp.complete:
        await conn.wait()
    assert not conn.reading()  # the whole answer came in while reading was paused
    assert resp.read_buffered() == b"x" * HIGH_WATER + b"xyz"
    assert conn.reading()
    resp.release()
    async with asyncio.timeout(2):
        assert await fetch(p) == (200, b"ok")  # on the same, pooled connection
        assert await fetch(p) == (200, b"ok")
    assert raw.connections == 1
    await p.close()


async def test_an_early_answer_retires_the_connection_its_body_was_on(
    raw_server: Callable[[Script], Awaitable[Raw]],
) -> None:
    """The upstream answers (413) before the request body is all sent: that connection
    still holds an unfinished request, so it is never reused."""
    answered = asyncio.Event()

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        if n == 1:
            await r.readuntil(b"\r\n\r\n")  # the head only
            w.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig")
            await w.drain()
            answered.set()
            await r.read()  # keeps the connection open, as a keep-alive server would
            return
        while True:
            await read_request(r)
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await w.drain()

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        await answered.wait()  # the rest comes after the answer
        for _ in range(10):
            yield b"x" * 1000

    raw = await raw_server(script)
    p = pool(raw.port)
    h = hdrs()
    h["Content-Length"] = "11000"
    resp = await p.send("POST", "/", h, body(), retry_stale=False)
    assert (resp.status, b"".join([c async for c in resp.iter_body()])) == (413, b"big")
    resp.release()
    async with asyncio.timeout(2):
        assert await fetch(p) == (200, b"ok")
    assert raw.connections == 2  # a fresh connection, not the one with half a request
    await p.close()


async def test_an_upstream_100_continue_then_the_next_exchange_on_the_connection(
    raw_server: Callable[[Script], Awaitable[Raw]],
) -> None:
    """An upstream that sends its own 100 Continue (unasked) before the answer to a
    POST: the interim answer is skipped and the connection is reused cleanly."""

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        while True:
            request = await read_request(r)
            if request.startswith(b"POST"):
                w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n" + request[:4])
            await w.drain()

    raw = await raw_server(script)
    p = pool(raw.port)
    async with asyncio.timeout(2):
        assert await fetch(p, "POST", b"x" * 350_000) == (200, b"POST")
        assert await fetch(p) == (200, b"GET ")
    assert raw.connections == 1
    await p.close()
