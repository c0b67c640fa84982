"""EXPERIMENTAL: the proxy port on strangler's own asyncio protocol over llhttp
(``httptools``), driving the pipeline's chains through ``strangler.incoming`` without
aiohttp's server side. Off by default: ``STRANGLER_LISTENER=llhttp`` in the
environment of ``strangler serve`` turns it on (``server.py``); the admin API stays
on aiohttp.

Why: aiohttp's server side is about a third of a worker's CPU per small request
(tests/bench/README.md). Here the head is parsed once by llhttp into the fields the
steps read, a whole answer goes out in one ``transport.write``, and a streamed one
chunk by chunk with the transport's flow control.

What it keeps of ``strangler.protocol``'s hardening (the same answers): 405 for
CONNECT/TRACE (with ``Allow``), 400/505 for other HTTP versions, 431 for a head over
``max_head_bytes`` / a line over ``max_header_bytes`` / too many fields, 400 for an
invalid ``Host``, absolute-form targets forwarded in origin form with the target's
authority as ``Host``, 501 for a ``Transfer-Encoding`` other than ``chunked``, the
``underscore_headers`` modes, 408 for a head not complete within ``header_timeout``,
the idle (keep-alive) and body timeouts, pipelined requests answered in order and a
parse failure answered 400 after the requests before it, ``Expect: 100-continue``,
HTTP/1.0 (close-delimited streams), HEAD, a body left unread after an early answer
(413) read and dropped for up to ``_LINGER`` seconds so the client sees the answer.
The connection cap and the drain are ``ProxyHTTPServer``'s (this server is one). A
WebSocket upgrade is relayed as raw bytes both ways after the upstream's 101 (frames
are not parsed: more transparent, and no aiohttp client session).

Known differences from the aiohttp listener: cookies are parsed with
``http.cookies`` (route matching on cookies with unusual syntax may differ); an
``Upgrade`` other than websocket is answered as a plain request, then the connection
closes. The whole test suite passes with the switch on (see the commit message).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from http.cookies import SimpleCookie
from typing import Any, Final, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy, MultiDictProxy, istr
from yarl import URL

from strangler.errors import ForwardError, ForwardErrorKind, ForwardStage
from strangler.forward.h1 import serialize_head
from strangler.forward.pool import UpstreamPool
from strangler.incoming import Request, Responder
from strangler.protocol import (
    ListenerLimits,
    ProxyHTTPServer,
    Refused,
    split_absolute,
    valid_host,
)
from strangler.tls import tls_error

log = logging.getLogger("strangler.protocol")

Serve = Callable[[Request, Responder], Awaitable[None]]

_HOST: Final = istr("Host")
_TE: Final = istr("Transfer-Encoding")
_CL: Final = istr("Content-Length")
_EXPECT: Final = istr("Expect")
_UPGRADE: Final = istr("Upgrade")
# Fields that may appear once (aiohttp's parser refuses a repeated one the same way).
_SINGLETONS: Final = tuple(
    istr(n)
    for n in (
        "Content-Length", "Content-Location", "Content-Range", "Content-Type", "ETag",
        "Host", "Max-Forwards", "Server", "Transfer-Encoding", "User-Agent",
    )
)  # fmt: skip
_REFUSED_METHODS: Final = frozenset({"CONNECT", "TRACE"})
_ALLOW: Final = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
_PROXY_STATUS: Final = "strangler; error=http_request_error"
_REFUSAL_STATUSES: Final = frozenset({400, 405, 431, 501, 505})
_NO_BODY: Final = frozenset({204, 304})
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_LINGER: Final = 5.0  # seconds to read and drop a body left unread after the answer
_HIGH_WATER: Final = 256 * 1024  # request body buffered before reading pauses
_REASONS: Final = {s.value: s.phrase for s in HTTPStatus}
_FQDN: Final = socket.getfqdn()


class _Date:
    """The ``Date`` value of our own answers, formatted once a second."""

    __slots__ = ("_at", "_value")

    def __init__(self) -> None:
        self._at = 0
        self._value = ""

    def now(self) -> str:
        t = int(time.time())
        if t != self._at:
            self._at, self._value = t, formatdate(t, usegmt=True)
        return self._value


class H1Request:
    """``strangler.incoming.Request`` (and its ``Body``) for one parsed request."""

    __slots__ = (
        "_chunks",
        "_conn",
        "_discard",
        "_eof",
        "_path",
        "_url",
        "_waiter",
        "body_exists",
        "buffered",
        "content_length",
        "continued",
        "expects_continue",
        "headers",
        "keep_alive",
        "method",
        "raw_path",
        "remote",
        "scheme",
        "upgrade",
        "version",
    )  # fmt: skip

    def __init__(
        self,
        conn: H1Protocol,
        method: str,
        raw_path: str,
        version: str,
        headers: CIMultiDictProxy[str],
        keep_alive: bool,
        upgrade: bool,
    ) -> None:
        self._conn = conn
        self.method = method
        self.raw_path = raw_path
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        self.scheme = conn.scheme
        self.remote = conn.remote
        length = headers.get(_CL)
        self.content_length = int(length) if length is not None and length.isdigit() else None
        chunked = _TE in headers
        self.body_exists = chunked or bool(self.content_length)
        expect = headers.get(_EXPECT)
        self.expects_continue = expect is not None and expect.lower() == "100-continue"
        self._url: URL | None = None
        self._path: str | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._eof = not self.body_exists
        self._waiter: asyncio.Future[None] | None = None
        self.buffered = 0
        self.continued = False  # 100 Continue was sent
        self._discard = False

    @property
    def url(self) -> URL:
        if self._url is None:
            self._url = URL(self.raw_path, encoded=True)
        return self._url

    @property
    def path(self) -> str:
        if self._path is None:
            self._path = self.url.path
        return self._path

    @property
    def host(self) -> str:
        return self.headers.get(_HOST) or _FQDN

    @property
    def query(self) -> MultiDictProxy[str]:
        return self.url.query

    @property
    def cookies(self) -> Mapping[str, str]:
        raw = self.headers.get("Cookie")
        if not raw:
            return {}
        parsed: SimpleCookie = SimpleCookie()
        parsed.load(raw)
        return {k: m.value for k, m in parsed.items()}

    @property
    def body(self) -> H1Request:
        return self

    # -- body, fed by the protocol ---------------------------------------------------------
    def discard(self) -> None:
        """Drop what is buffered and what comes (a body no one will read)."""
        self._discard = True
        self._chunks.clear()
        self.buffered = 0

    def feed(self, data: bytes) -> None:
        if self._discard:
            return
        self._chunks.append(data)
        self.buffered += len(data)
        self._wake()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def _wake(self) -> None:
        w, self._waiter = self._waiter, None
        if w is not None and not w.done():
            w.set_result(None)

    @property
    def complete(self) -> bool:
        return self._eof and not self._chunks

    async def readany(self) -> bytes:
        while not self._chunks:
            if self._eof:
                return b""
            self._waiter = self._conn.loop.create_future()
            self._conn.body_wanted()
            await self._waiter
        chunk = self._chunks.popleft()
        self.buffered -= len(chunk)
        if self.buffered < _HIGH_WATER:
            self._conn.resume_body()
        return chunk

    async def send_continue(self) -> None:
        self.continued = True
        self._conn.write(_CONTINUE)


def _head(status: int, reason: str | None, headers: Mapping[str, str], extra: str) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason or _REASONS.get(status, '')}\r\n"]
    lines.extend(f"{k}: {v}\r\n" for k, v in headers.items())
    lines.append(extra)
    lines.append("\r\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


class H1Responder:
    """``strangler.incoming.Responder`` writing straight to the connection."""

    __slots__ = ("_chunked", "_conn", "_head_only", "_req", "close", "started")

    def __init__(self, conn: H1Protocol, req: H1Request) -> None:
        self._conn = conn
        self._req = req
        self._head_only = req.method == "HEAD"
        self._chunked = False
        self.started = False
        self.close = not req.keep_alive

    def _connection(self) -> str:
        if self.close:
            return "Connection: close\r\n"
        if self._req.version == "1.0":
            return "Connection: keep-alive\r\n"
        return ""

    def whole(
        self, status: int, reason: str | None, headers: CIMultiDict[str], body: bytes
    ) -> None:
        extra = self._connection()
        if _CL not in headers and status not in _NO_BODY and not self._head_only:
            extra += f"Content-Length: {len(body)}\r\n"
        head = _head(status, reason, headers, extra)
        self.started = True
        self._conn.write(head if self._head_only or not body else head + body)

    def answer(self, status: int, text: str, headers: Mapping[str, str]) -> None:
        data = text.encode("utf-8")
        extra = (
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(data)}\r\n"
            f"Date: {self._conn.server.date.now()}\r\n{self._connection()}"
        )
        self.started = True
        head = _head(status, None, headers, extra)
        self._conn.write(head if self._head_only else head + data)

    async def start(self, status: int, reason: str | None, headers: CIMultiDict[str]) -> None:
        extra = ""
        if _CL not in headers and status not in _NO_BODY and not self._head_only:
            if self._req.version == "1.1":
                self._chunked = True
                extra = "Transfer-Encoding: chunked\r\n"
            else:
                self.close = True  # HTTP/1.0: the body ends with the connection
        extra += self._connection()
        self.started = True
        self._conn.write(_head(status, reason, headers, extra))
        await self._conn.drain()

    async def write(self, chunk: bytes) -> None:
        if self._head_only or not chunk:
            return
        if self._chunked:
            self._conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        else:
            self._conn.write(chunk)
        await self._conn.drain()

    async def end(self) -> None:
        if self._chunked:
            self._conn.write(b"0\r\n\r\n")

    def abort(self) -> None:
        self.close = True
        self._conn.abort()

    async def upgrade(self, pool: UpstreamPool, headers: CIMultiDict[str]) -> tuple[int, int]:
        """Relay an upgrade as raw bytes: the request head to the upstream, its answer's
        head to the client, and after a 101 every byte both ways until one side closes.
        Returns the status and the bytes relayed after the head."""
        req, h1 = self._req, pool.h1
        tls = h1.tls
        try:
            async with asyncio.timeout(h1.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    h1.host,
                    h1.port,
                    ssl=None if tls is None else tls.context,
                    server_hostname=None if tls is None else tls.server_hostname,
                )
        except ssl.SSLError as e:  # before OSError, its base class
            raise tls_error(h1.name, e) from e
        except (OSError, TimeoutError) as e:
            kind = (
                ForwardErrorKind.TIMEOUT
                if isinstance(e, TimeoutError)
                else ForwardErrorKind.REFUSED
            )
            raise ForwardError(h1.name, ForwardStage.CONNECT, kind, str(e) or "connect") from e
        try:
            headers["Connection"] = "Upgrade"  # hop-by-hop: given again for this hop
            headers["Upgrade"] = req.headers.get(_UPGRADE, "websocket")
            writer.write(serialize_head(req.method, pool.target(req.raw_path), headers, False))
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as e:
                raise ForwardError(
                    h1.name, ForwardStage.RESPONSE_HEADERS, ForwardErrorKind.PROTOCOL, str(e)
                ) from e
            try:
                status = int(head.split(b" ", 2)[1])
            except (IndexError, ValueError) as e:
                raise ForwardError(
                    h1.name,
                    ForwardStage.RESPONSE_HEADERS,
                    ForwardErrorKind.PROTOCOL,
                    "invalid response head",
                ) from e
            self.started = True
            conn = self._conn
            conn.write(head)
            if status != 101:
                self.close = True  # its body, if any, is not relayed: end here
                return status, 0
            self.close = True
            return status, await conn.tunnel(reader, writer)
        finally:
            writer.close()


class H1Protocol(asyncio.Protocol):
    """One client connection: parse with llhttp, serve requests in order."""

    def __init__(self, server: LlhttpServer) -> None:
        self.server = server
        self.loop = server.loop
        self.limits = server.limits
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.scheme = "http"
        self.remote: str | None = None
        self.pending: collections.deque[H1Request] = collections.deque()
        self.current: H1Request | None = None  # being parsed (head or body)
        self._task_handler: asyncio.Task[None] | None = None  # web.Server reads this
        self._url: list[bytes] = []
        self._raw: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._in_head = False
        self._refusal: tuple[int, str] | None = None
        self._closing = False
        self._ready = False
        self._drain = False  # the server is shutting down: close after this answer
        self._writable: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_seen = 0.0
        self._tunnel: asyncio.StreamWriter | None = None  # an upgraded connection's upstream
        self._tunnel_bytes = 0
        self._early = b""  # bytes after an upgrade request's head

    # -- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = t = cast(asyncio.Transport, transport)
        peer = t.get_extra_info("peername")
        self.remote = peer[0] if isinstance(peer, tuple) else None
        if t.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        # Not idle while the server counts it (as aiohttp's handler, whose first wait
        # for data starts later): a new connection is not the one to close for room.
        self._ready = False
        self.server.connection_made(self, t)  # type: ignore[arg-type]
        self._ready = True
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        for timer in (self._head_timer, self._idle_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(ConnectionResetError("client gone"))
            self._writable.exception()  # retrieved: a dropped client is not an error
        task = self._task_handler
        if task is not None and not task.done():
            task.cancel()  # the client went away: cancel the exchange (as aiohttp does)
        cur = self.current
        if cur is not None and not cur._eof:
            cur.feed_eof()
        self.server.connection_lost(self, exc)  # type: ignore[arg-type]
        self.transport = None

    def pause_writing(self) -> None:
        self._writable = self.loop.create_future()

    def resume_writing(self) -> None:
        w, self._writable = self._writable, None
        if w is not None and not w.done():
            w.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel.write(data)
            self._tunnel_bytes += len(data)
            return
        if self._closing or self._refusal is not None:
            return
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            # Bytes after the upgrade request's head belong to the upgraded protocol.
            offset = e.args[0] if e.args and isinstance(e.args[0], int) else len(data)
            last = self.pending[-1] if self.pending else None
            if last is not None and last.upgrade:
                self._early = data[offset:]
                if self.transport is not None:
                    self.transport.pause_reading()  # until the upstream said 101
            else:
                self._drain = True  # an upgrade not relayed (h2c): answer it, then close
            return
        except httptools.HttpParserError as e:
            cause = e.__context__
            if isinstance(cause, Refused):  # raised by a callback of ours
                self._refuse(cause.code, cause.message)
            else:
                reason = str(e).splitlines()[0] if str(e) else "malformed request"
                self._refuse(400, f"bad request: {reason[:200]}")
        if self._in_head and self._refusal is None:
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(431, f"request head larger than {self.limits.max_head_bytes} bytes")
            elif self._head_timer is None and self.limits.header_timeout > 0:
                self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_late)
        elif self.current is not None and not self.current._eof:
            self._body_seen = self.loop.time()

    # -- llhttp callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._in_head = True
        self._url = []
        self._raw = []
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + 4
        self._head_bytes += size
        server = self.server
        if size > server.max_field_size + 4 or len(self._raw) >= server.max_headers:
            raise Refused(431, "request header fields too large")
        self._raw.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        parser, limits = self.parser, self.limits
        method = parser.get_method().decode("ascii", "replace")
        if method in _REFUSED_METHODS:
            raise Refused(405, f"method {method} is not allowed")
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            if version[:1] >= "2":
                raise Refused(505, f"HTTP/{version} is not supported")
            raise Refused(400, f"HTTP/{version} is not supported")
        if self._head_bytes + len(method) + 13 > limits.max_head_bytes:
            raise Refused(431, f"request head larger than {limits.max_head_bytes} bytes")
        headers: CIMultiDict[str] = CIMultiDict()
        mode = limits.underscore_headers
        for name, value in self._raw:
            if mode != "keep" and b"_" in name:
                if mode == "reject":
                    raise Refused(400, "header names with '_' are not accepted")
                continue
            headers.add(
                name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape")
            )
        target = b"".join(self._url).decode("utf-8", "surrogateescape")
        if target[:1] != "/":
            if target.lower().startswith(("http://", "https://")):
                authority, target = split_absolute(target)
                headers[_HOST] = authority  # the target's authority wins
            elif not (method == "OPTIONS" and target == "*"):
                raise Refused(400, "bad request: invalid request target")
        for single in _SINGLETONS:
            if single in headers and len(headers.getall(single)) > 1:
                raise Refused(400, f"bad request: duplicate {single} header")
        host = headers.get(_HOST)
        if host is None:
            if version == "1.1":  # RFC 9112 §3.2: a 1.1 request without Host is invalid
                raise Refused(400, "bad request: missing Host header")
        elif not valid_host(host, self.server.host_cache):
            raise Refused(400, "invalid Host header")
        if _TE in headers and _CL in headers:
            raise Refused(400, "bad request: both Content-Length and Transfer-Encoding")
        te = headers.get(_TE)
        if te is not None and te.lower() != "chunked":
            raise Refused(501, f"Transfer-Encoding {te[:50]!r} is not supported")
        upgrade = (
            parser.should_upgrade()
            and headers.get(_UPGRADE, "").lower() == "websocket"
            and "upgrade" in headers.get("Connection", "").lower()
        )
        req = H1Request(
            self,
            method,
            target,
            version,
            CIMultiDictProxy(headers),
            parser.should_keep_alive(),
            upgrade,
        )
        self.current = req
        self.pending.append(req)
        if req.body_exists and limits.body_timeout > 0:
            self._body_seen = self.loop.time()
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(limits.body_timeout, self._body_late)
        if self._task_handler is None:
            self._task_handler = self.loop.create_task(self._serve())

    def on_body(self, body: bytes) -> None:
        cur = self.current
        if cur is None:  # pragma: no cover - llhttp calls it only inside a message
            return
        cur.feed(body)
        if cur.buffered >= _HIGH_WATER and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        cur = self.current
        if cur is not None:
            cur.feed_eof()
        self.current = None

    # -- flow control, used by requests and responders --------------------------------------
    def resume_body(self) -> None:
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    def body_wanted(self) -> None:
        self.resume_body()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self._closing:
            self.transport.write(data)

    async def drain(self) -> None:
        w = self._writable
        if w is not None:
            await w

    async def tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
        """After a 101: relay bytes both ways until either side closes."""
        self._tunnel = writer
        if self._early:
            writer.write(self._early)
            self._tunnel_bytes += len(self._early)
            self._early = b""
        if self.transport is not None:
            self.transport.resume_reading()
        sent = 0
        try:
            while not self._closing:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                sent += len(chunk)
                self.write(chunk)
                await self.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            self._tunnel = None
        return sent + self._tunnel_bytes

    def abort(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.abort()

    # -- serving ------------------------------------------------------------------------------
    async def _serve(self) -> None:
        serve = self.server.serve
        try:
            while self.pending and not self._closing:
                req = self.pending[0]
                responder = H1Responder(self, req)
                try:
                    await serve(req, responder)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("error handling %s %s", req.method, req.raw_path)
                    if responder.started:
                        self.abort()
                        return
                    responder.close = True
                    responder.answer(500, "internal error in the proxy (500)\n", {})
                self.pending.popleft()
                if responder.close or self._drain:
                    self._close_after_write()
                    return
                if not req.complete and not await self._linger(req):
                    # a body left unread: the next request's first byte cannot be found
                    self._close_after_write()
                    return
            if self._refusal is not None:
                status, text = self._refusal
                self._answer_refusal(status, text)
                return
            self._arm_idle()
        finally:
            self._task_handler = None

    async def _linger(self, req: H1Request) -> bool:
        """After an answer given before the body was read (a 413): read the rest of the
        body and drop it, so the client reads the answer and may send its next
        request (as aiohttp does, for ``_LINGER`` seconds). ``False``: close instead."""
        if req.expects_continue and not req.continued:
            return False  # the client waits for a go-ahead it will not get: no body comes
        req.discard()
        self.resume_body()
        try:
            async with asyncio.timeout(_LINGER):
                while await req.readany():
                    pass
        except TimeoutError:
            return False
        return not self._closing

    def _refuse(self, status: int, message: str) -> None:
        """Stop parsing; answer ``status`` after the requests already queued."""
        self._refusal = (status, message)
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        cur = self.current
        if cur is not None and not cur._eof:
            # its body is cut by the garbage: never answered
            if self.pending and self.pending[-1] is cur and self._task_handler is None:
                self.pending.pop()
            cur.feed_eof()
        if self._task_handler is None:
            self._task_handler = self.loop.create_task(self._serve())

    def _answer_refusal(self, status: int, message: str) -> None:
        text = message if message.endswith("\n") else message + "\n"
        if status != 500:
            log.info("rejected a request from %s: %s", self.remote, text.strip())
        headers: dict[str, str] = {}
        if status in _REFUSAL_STATUSES:
            headers["Proxy-Status"] = _PROXY_STATUS
        if status == 405:
            headers["Allow"] = _ALLOW
        data = text.encode("utf-8")
        head = _head(
            status,
            None,
            headers,
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(data)}\r\n"
            f"Date: {self.server.date.now()}\r\nConnection: close\r\n",
        )
        self.write(head + data)
        self._close_after_write()

    def _close_after_write(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.close()

    def _arm_idle(self) -> None:
        timeout = self.server.keepalive_timeout
        if timeout and self._idle_timer is None and self.transport is not None:
            self._idle_timer = self.loop.call_later(timeout, self._idle_late)

    def _idle_late(self) -> None:
        self._idle_timer = None
        if self.idle:
            self._close_after_write()

    def _head_late(self) -> None:
        self._head_timer = None
        if self._in_head:
            self._refuse(408, f"request head not complete within {self.limits.header_timeout:g}s")

    def _body_late(self) -> None:
        self._body_timer = None
        cur = self.current
        if cur is None or cur._eof or self.transport is None:
            return
        now = self.loop.time()
        timeout = self.limits.body_timeout
        if self._reading_paused:  # the proxy is not reading: not the client's delay
            self._body_seen = now
        elif now - self._body_seen >= timeout:
            log.info(
                "closing a connection from %s: no request body byte for %gs", self.remote, timeout
            )
            self.abort()
            return
        self._body_timer = self.loop.call_at(self._body_seen + timeout, self._body_late)

    # -- what web.Server and ProxyHTTPServer ask of a connection ------------------------------
    @property
    def idle(self) -> bool:
        return (
            self._ready
            and not self.pending
            and self._task_handler is None
            and not self._in_head
            and self._refusal is None
            and not self._closing
        )

    def force_close(self) -> None:
        self._close_after_write()

    def close(self) -> None:
        """Stop at the end of the request being answered (a drain)."""
        self._drain = True
        if self.idle:
            self._close_after_write()

    async def shutdown(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (web.Server calls it so)
        task = self._task_handler
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                task.cancel()
            except (asyncio.CancelledError, Exception):
                pass
        self._close_after_write()


class LlhttpServer(ProxyHTTPServer):
    """``ProxyHTTPServer`` (connection cap, drain) whose connections are ``H1Protocol``."""

    def __init__(
        self,
        serve: Serve,
        *,
        limits: ListenerLimits,
        keepalive_timeout: float,
        max_field_size: int,
        max_headers: int,
    ) -> None:
        super().__init__(_unused_handler, limits=limits)
        self.serve = serve
        self.loop = asyncio.get_running_loop()
        self.keepalive_timeout = keepalive_timeout
        self.max_field_size = max_field_size
        self.max_headers = max_headers
        self.date = _Date()

    @classmethod
    def like(cls, server: ProxyHTTPServer, serve: Serve) -> LlhttpServer:
        """The llhttp listener with ``server``'s limits and timeouts."""
        kwargs = server._kwargs
        return cls(
            serve,
            limits=server.limits,
            keepalive_timeout=float(kwargs.get("keepalive_timeout", 75.0)),
            max_field_size=int(kwargs.get("max_field_size", 8190)),
            max_headers=int(kwargs.get("max_headers", 128)),
        )

    def __call__(self) -> Any:
        return H1Protocol(self)


async def _unused_handler(request: Any) -> Any:  # pragma: no cover - never called
    raise NotImplementedError
