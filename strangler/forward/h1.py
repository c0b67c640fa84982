"""A lean HTTP/1.1 client for the proxy's hot path: keep-alive pools of asyncio protocols.

Why not aiohttp's ``ClientSession``: a proxy does not need cookies, redirects,
decompression, tracing, URL building or per-request timeout objects, and the general
client's per-request work was most of the proxy's CPU time (see the commit that added
this module for the figures). This client does exactly one thing: send a request head
(and a streamed body) on a pooled connection and hand back the response head and a
body stream, with llhttp (``httptools``) parsing the response.

Guarantees:
- one exchange per connection at a time; a connection goes back to the pool only
  after a complete, keep-alive exchange, otherwise it is closed;
- back-pressure both ways: the request body waits while the upstream socket is
  full; reading pauses while more than ``HIGH_WATER`` response bytes wait for the
  client, and resumes once they drain however they are taken (``consumed``); a
  connection that is not being read is never pooled;
- failures raise ``ForwardError`` with the stage reached (connect, send, response
  head, response body) and the kind (refused, reset, timeout, protocol);
- the read timeout is the longest silence allowed while waiting for the upstream,
  checked by one timer per exchange rather than one per packet.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Final, cast

import httptools
from multidict import CIMultiDict

from strangler.errors import ForwardError, ForwardErrorKind, ForwardStage
from strangler.tls import UpstreamSsl, tls_error

HIGH_WATER: Final = 256 * 1024  # response bytes buffered before reading pauses
LOW_WATER: Final = 64 * 1024
IDLE_TIMEOUT: Final = 30.0  # an idle pooled connection older than this is closed
_CRLF: Final = b"\r\n"


class _Closed(Exception):
    """Internal: the connection is gone."""


class H1Connection(asyncio.Protocol):
    """One upstream TCP connection. Parses responses; one exchange at a time."""

    def __init__(self, pool: H1Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.active = False  # an exchange is under way (bytes are expected)
        self.idle_since = 0.0
        self.reused = False  # has completed at least one exchange
        self._loop = asyncio.get_running_loop()
        self._writable: asyncio.Future[None] | None = None
        self._paused_reading = False
        self._timer: asyncio.TimerHandle | None = None
        self._seen = 0
        self.reset_exchange()

    # -- exchange state ----------------------------------------------------------------
    def reset_exchange(self) -> None:
        self.status = 0
        self.reason = ""
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.framed = False  # Content-Length or chunked: the end is known
        self.no_body = False  # HEAD request: the parser must not wait for a body
        self.body: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.error: ForwardError | None = None
        self.bytes_in = 0
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.active:
            # Bytes on an idle keep-alive connection (a 408, garbage): it can no longer
            # be trusted to start the next response cleanly.
            self.abort()
            return
        self.bytes_in += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(ForwardErrorKind.PROTOCOL, f"invalid response: {e}")
            self._close()
            return
        if self.no_body and self.head_done and not self.complete:
            # A HEAD answer ends with its head; llhttp cannot be told so, so start
            # a fresh parser for the next exchange.
            self.complete = True
            self.parser = httptools.HttpResponseParser(self)
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head_done and not self.framed and not self.complete and self.error is None:
            self.complete = True  # a close-delimited body ends with the connection
            self.keep_alive = False
        elif not self.complete and self.error is None:
            detail = str(exc) if exc else "connection closed"
            self._fail(ForwardErrorKind.RESET, detail)
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(_Closed())
        self.pool.forget(self)

    def pause_writing(self) -> None:
        self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        w, self._writable = self._writable, None
        if w is not None and not w.done():
            w.set_result(None)

    # -- httptools callbacks ------------------------------------------------------------
    def on_status(self, status: bytes) -> None:
        if self.complete:  # bytes past the end of the answer: never reuse this connection
            self.keep_alive = False
            return
        self.reason = status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.complete:  # bytes past the end of the answer: never reuse this connection
            self.keep_alive = False
            return
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.complete:  # bytes past the end of the answer: never reuse this connection
            self.keep_alive = False
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.raw_headers.clear()  # 100 Continue, 103 Early Hints: wait for the answer
            return
        self.status = status
        self.keep_alive = bool(self.parser.should_keep_alive())
        self.head_done = True
        for name, value in self.raw_headers:
            low = name.lower()
            if low == b"content-length" or (
                low == b"transfer-encoding" and b"chunked" in value.lower()
            ):
                self.framed = True
        if status in (204, 304):
            self.framed = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:  # bytes past the end of the answer: never reuse this connection
            self.keep_alive = False
            return
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self._paused_reading and self.transport:
            self._paused_reading = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.head_done and not self.complete:
            self.complete = True
            self._wake()

    # -- helpers -----------------------------------------------------------------------
    def _wake(self) -> None:
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    def _fail(self, kind: ForwardErrorKind, detail: str) -> None:
        if self.error is None:
            stage = ForwardStage.RESPONSE_BODY if self.head_done else ForwardStage.RESPONSE_HEADERS
            self.error = ForwardError(self.pool.name, stage, kind, detail)
        self._wake()

    def _close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
            self.pool.forget(self)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.closed = True
        self.pool.forget(self)

    async def wait(self) -> None:
        """Wait for the next parser event or failure (the read timer bounds silence)."""
        self._waiter = self._loop.create_future()
        await self._waiter

    def arm(self, timeout: float | None) -> None:
        """Start the read timer for this exchange.

        One timer per exchange, not per packet: it fires every ``timeout`` seconds and
        fails the exchange only if no byte arrived during a whole period while the
        proxy was waiting on the upstream (so a silence of between one and two
        periods trips it).
        """
        if timeout is not None:
            self._seen = self.bytes_in
            self._timer = self._loop.call_later(timeout, self._tick, timeout)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self, timeout: float) -> None:
        self._timer = None
        if self.complete or self.closed or self.error is not None:
            return
        if self.bytes_in == self._seen and self._waiter is not None:
            self._fail(ForwardErrorKind.TIMEOUT, "read")
            self.abort()
            return
        self._seen = self.bytes_in
        self._timer = self._loop.call_later(timeout, self._tick, timeout)

    async def write_body(self, chunk: bytes) -> None:
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            raise _Closed()
        transport.write(chunk)
        if self._writable is not None:
            await self._writable

    def consumed(self, nbytes: int) -> None:
        """``nbytes`` of the buffered body were handed on: read again once drained.

        Every way of taking body bytes goes through here. A taker that skipped it
        once left a connection whose last answer had paused reading (a body over
        ``HIGH_WATER`` that arrived whole) still paused when it went back to the pool:
        the next request on it was sent, its answer sat unread in the socket, and the
        exchange hung until the read timeout.
        """
        self.buffered -= nbytes
        if self._paused_reading and self.buffered <= LOW_WATER and self.transport:
            self._paused_reading = False
            self.transport.resume_reading()

    def reading(self) -> bool:
        """Whether bytes from the upstream are being read (not paused for the client)."""
        return not self._paused_reading


class H1Response:
    """A response head, and its body as a stream. ``release()`` must be called."""

    __slots__ = ("_conn", "_released", "headers", "reason", "status")

    def __init__(self, conn: H1Connection) -> None:
        self._conn = conn
        self._released = False
        self.status = conn.status
        self.reason = conn.reason
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in conn.raw_headers:
            headers.add(
                name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape")
            )
        self.headers = headers

    @property
    def complete(self) -> bool:
        """Whether the whole body has already arrived."""
        return self._conn.complete and self._conn.error is None

    def read_buffered(self) -> bytes:
        """Everything buffered (the whole body when ``complete``)."""
        conn = self._conn
        data = b"".join(conn.body)
        conn.body.clear()
        conn.consumed(conn.buffered)
        return data

    async def iter_body(self) -> AsyncIterator[bytes]:
        """The body as it arrives. Raises ``ForwardError(RESPONSE_BODY)`` on failure."""
        conn = self._conn
        while True:
            while conn.body:
                chunk = conn.body.popleft()
                conn.consumed(len(chunk))
                yield chunk
            if conn.error is not None:
                raise conn.error
            if conn.complete:
                return
            await conn.wait()

    def release(self) -> None:
        """Return the connection to the pool if the exchange completed cleanly."""
        if self._released:
            return
        self._released = True
        conn = self._conn
        conn.disarm()
        if conn.complete and conn.error is None and conn.keep_alive and not conn.closed:
            conn.pool.put_back(conn)
        else:
            conn.abort()
        conn.pool.slot_free()


def serialize_head(method: str, target: str, headers: CIMultiDict[str], chunked: bool) -> bytes:
    lines = [f"{k}: {v}\r\n" for k, v in headers.items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked\r\n")
    head = "".join(lines)
    return f"{method} {target} HTTP/1.1\r\n{head}\r\n".encode("utf-8", "surrogateescape")


class H1Pool:
    """Keep-alive connections to one upstream origin, at most ``limit`` at once."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        limit: int,
        connect_timeout: float | None,
        read_timeout: float | None,
        tls: UpstreamSsl | None = None,  # None: plain TCP
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.tls = tls
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: list[H1Connection] = []
        self._all: set[H1Connection] = set()
        self._slots = asyncio.Semaphore(limit)
        self._closing = False

    # -- pool bookkeeping ------------------------------------------------------------
    def forget(self, conn: H1Connection) -> None:
        self._all.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)

    def put_back(self, conn: H1Connection) -> None:
        if self._closing:
            conn.abort()
            return
        if not conn.reading():
            # Never pool a connection that is not being read: its next answer would
            # never arrive, and a close or stray bytes would go unnoticed.
            conn.abort()
            return
        conn.reused = True
        conn.active = False
        conn.idle_since = time.monotonic()
        conn.reset_exchange()
        self._idle.append(conn)

    def slot_free(self) -> None:
        self._slots.release()

    async def _connect(self) -> H1Connection:
        loop = asyncio.get_running_loop()
        tls = self.tls
        if tls is not None and tls.problem is not None:
            raise ForwardError(self.name, ForwardStage.CONNECT, ForwardErrorKind.TLS, tls.problem)
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: H1Connection(self),
                    self.host,
                    self.port,
                    ssl=None if tls is None else tls.context,
                    server_hostname=None if tls is None else tls.server_hostname,
                )
        except TimeoutError as e:
            raise ForwardError(
                self.name, ForwardStage.CONNECT, ForwardErrorKind.TIMEOUT, "connect"
            ) from e
        except ssl.SSLError as e:  # before OSError, its base class
            raise tls_error(self.name, e) from e
        except OSError as e:
            raise ForwardError(
                self.name, ForwardStage.CONNECT, ForwardErrorKind.REFUSED, e.strerror or str(e)
            ) from e
        self._all.add(conn)
        return conn

    def _take_idle(self) -> H1Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()  # LIFO: the warmest connection
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if now - conn.idle_since > IDLE_TIMEOUT:
                conn.abort()
                continue
            return conn
        return None

    # -- the exchange ------------------------------------------------------------------
    async def send(
        self,
        method: str,
        target: str,
        headers: CIMultiDict[str],
        body: bytes | AsyncIterable[bytes] | None,
        *,
        retry_stale: bool,
    ) -> H1Response:
        """Send a request; return once the response head arrived.

        ``headers`` must already be the end-to-end set plus Host. A body without a
        Content-Length header is sent chunked. ``retry_stale``: when a reused
        keep-alive connection turns out closed before any response byte, send once
        more on a fresh connection (only for requests without a body).
        """
        await self._slots.acquire()
        try:
            for attempt in (0, 1):
                conn = self._take_idle()
                if conn is None:
                    conn = await self._connect()
                try:
                    return await self._exchange(conn, method, target, headers, body)
                except ForwardError as e:
                    stale = conn.reused and conn.bytes_in == 0 and e.kind is ForwardErrorKind.RESET
                    if attempt == 0 and retry_stale and stale:
                        continue
                    raise
            raise AssertionError("unreachable")  # pragma: no cover
        except BaseException:
            self._slots.release()
            raise

    async def _exchange(
        self,
        conn: H1Connection,
        method: str,
        target: str,
        headers: CIMultiDict[str],
        body: bytes | AsyncIterable[bytes] | None,
    ) -> H1Response:
        conn.active = True
        conn.no_body = method == "HEAD"
        chunked = body is not None and "Content-Length" not in headers
        transport = conn.transport
        assert transport is not None
        conn.arm(self.read_timeout)
        try:
            transport.write(serialize_head(method, target, headers, chunked))
            if body is not None:
                await self._send_body(conn, body, chunked)
            while not conn.head_done and conn.error is None:
                await conn.wait()
        except _Closed:
            pass  # the error, if any, is on conn; an early answer is still an answer
        except BaseException:  # cancelled (client gone) or the body failed (413)
            conn.disarm()
            conn.abort()
            raise
        if conn.error is not None and not conn.head_done:
            err = conn.error
            conn.disarm()
            conn.abort()
            raise err
        if not conn.head_done:
            conn.disarm()
            conn.abort()
            raise ForwardError(self.name, ForwardStage.SEND, ForwardErrorKind.RESET, "closed")
        return H1Response(conn)

    async def _send_body(
        self, conn: H1Connection, body: bytes | AsyncIterable[bytes], chunked: bool
    ) -> None:
        if isinstance(body, bytes):  # a buffered body (kept for a fallback): one write
            if chunked:
                body = b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
            await conn.write_body(body)
            return
        async for chunk in body:
            if conn.head_done:
                # The upstream answered before taking the whole body (a 413, say).
                # The connection cannot be reused: its request is unfinished.
                conn.keep_alive = False
                return
            if chunked:
                await conn.write_body(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            else:
                await conn.write_body(chunk)
        if chunked:
            await conn.write_body(b"0\r\n\r\n")

    async def close(self) -> None:
        self._closing = True
        for conn in list(self._all):
            conn.abort()
        self._idle.clear()
        self._all.clear()
