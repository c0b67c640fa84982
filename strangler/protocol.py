"""The client-facing HTTP/1.1 server: aiohttp's low-level server, with the answers a proxy
owes a client that sent something it cannot accept, and the limits that keep hostile
clients from wearing it down.

aiohttp answers every parse failure with a 400 and logs a traceback. A proxy should
say which limit was hit and keep its log readable under junk traffic. What a client
gets, and why (each answer closes the connection, carries no ``Server`` header, and the
4xx/5xx refusals of a request the proxy will not forward carry
``Proxy-Status: strangler; error=http_request_error``, RFC 9209):

==========================================================  =========================
request                                                     answer
==========================================================  =========================
a header line over ``limits.max_header_bytes``, more than    431
``limits.max_headers`` fields, or a head (request line and
all fields) over ``limits.max_head_bytes``
a ``Host`` that is not ``reg-name / IPv4 / [IP-literal]``    400 (it would reach the
``[:port]`` (RFC 9110 §7.2, RFC 3986 §3.2.2)                 upstream's routing and its
                                                             forwarded headers)
an absolute-form target ``http://a.example/x``               forwarded as ``/x`` with
                                                             ``Host: a.example`` (RFC
                                                             9112 §3.2.2: the target's
                                                             authority wins)
any other target not starting with ``/``                     400 (aiohttp's parser)
``CONNECT`` (strangler is no tunnel), ``TRACE`` (it would    405, ``Allow`` lists the
echo ``Authorization`` and ``Cookie``, as nginx refuses it)  methods it forwards
HTTP/0.9 or an unknown 1.x / HTTP/2.0+ request line         400 / 505
``Transfer-Encoding`` other than exactly ``chunked``         501 (a coding the proxy
                                                             cannot decode, as nginx)
a header name with ``_`` (``X_User`` collides with           dropped (the default),
``X-User`` in CGI-style frameworks)                          kept, or 400: per
                                                             ``limits.underscore_headers``
garbage after a valid pipelined request                      the request is answered,
                                                             then 400
a head not complete ``limits.header_timeout`` after its      408
first byte (slowloris)
a body with no byte for ``limits.body_timeout`` (while the   connection closed
proxy wants to read it)
an idle connection, ``limits.keepalive_timeout`` after       connection closed
accept or after its last answer
any other malformed request                                  400 with the parser's
                                                             one-line reason
an unexpected error inside the handler                       500, no traceback
==========================================================  =========================

Cost per request: the checks above run once per parsed request head, on the message
aiohttp's parser built (a method set lookup, a version compare, two header lookups,
and a dict lookup of ``Host`` in the server's bounded cache of hosts already checked
with the regex). The underscore and head-size checks scan only heads
whose bytes contain ``_`` or exceed ``max_head_bytes`` (``bytes.__contains__``, C
speed); a head that arrives in one read arms no timer.

``max_connections``: ``ProxyHTTPServer`` counts open connections. At the cap it first
closes idle keep-alive connections (the oldest, a sixteenth of the cap at a time, as
nginx reuses its idle connections); when none is idle it asks its listener
(``strangler.listener.CappedSite``) to stop accepting, so new clients wait in the
kernel's backlog instead of exhausting file descriptors, and resumes below it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final, Literal, Protocol

from aiohttp import web
from aiohttp.http import HttpVersion10, HttpVersion11
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.http_parser import HttpRequestParser, RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestHandler, RequestPayloadError, _ErrInfo
from multidict import CIMultiDict, CIMultiDictProxy, istr
from yarl import URL

log = logging.getLogger("strangler.protocol")

UnderscoreHeaders = Literal["drop", "keep", "reject"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerLimits:
    """What one client connection may do (from ``limits:``); 0 disables a timeout."""

    max_head_bytes: int = 32768
    header_timeout: float = 30.0
    body_timeout: float = 60.0
    underscore_headers: UnderscoreHeaders = "drop"
    max_connections: int = 0  # 0: no cap


class Pausable(Protocol):
    """A listener that can stop and restart accepting connections."""

    def pause(self) -> None: ...
    def resume(self) -> None: ...


class Refused(HttpProcessingError):
    """A request the proxy refuses on its own; ``code`` is the status answered."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code=code, message=message)


# RFC 3986 host (reg-name, IPv4address, or a bracketed IP-literal) and an optional port.
_HOST_RE: Final = re.compile(
    r"(?:(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*"
    r"|\[[0-9A-Fa-f:.]+\]"
    r"|\[[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+\])"
    r"(?::[0-9]*)?"
)
_HOST: Final = istr("Host")
_TRANSFER_ENCODING: Final = istr("Transfer-Encoding")
_REFUSED_METHODS: Final = frozenset({"CONNECT", "TRACE"})
_ALLOW: Final = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
_ABSOLUTE: Final = ("http://", "https://")
_PROXY_STATUS: Final = "strangler; error=http_request_error"
_REFUSAL_STATUSES: Final = frozenset({400, 405, 431, 501, 505})


def _too_large(exc: BaseException | None) -> bool:
    if isinstance(exc, Refused):
        return exc.code == 431
    return isinstance(exc, LineTooLong) or (
        isinstance(exc, BadHttpMessage) and "Too many headers" in str(exc)
    )


def _head_size(msg: RawRequestMessage) -> int:
    # request line + each "name: value\r\n" + the blank line; close enough to the wire
    size = len(msg.method) + len(msg.path) + 13
    for name, value in msg.raw_headers:
        size += len(name) + len(value) + 4
    return size


_NAME: Final = itemgetter(0)


def _without_underscores(msg: RawRequestMessage, mode: UnderscoreHeaders) -> RawRequestMessage:
    if b"_" not in b"\n".join(map(_NAME, msg.raw_headers)):  # C speed: a "_" in a value
        return msg  # (a cookie, a token) is the common case that brings us here
    if mode == "reject":
        raise Refused(400, "header names with '_' are not accepted")
    raw = tuple((k, v) for k, v in msg.raw_headers if b"_" not in k)
    headers = CIMultiDict((k, v) for k, v in msg.headers.items() if "_" not in k)
    return msg._replace(headers=CIMultiDictProxy(headers), raw_headers=raw)


def split_absolute(target: str) -> tuple[str, str]:
    """``http://a.example/x?q`` → ``("a.example", "/x?q")``: the authority and the
    origin-form target of an absolute-form request target (RFC 9112 §3.2.2), or
    ``Refused`` (400) for userinfo or an invalid authority."""
    scheme_end = target.index("://") + 3
    rest = target[scheme_end:]
    cut = len(rest)
    for sep in "/?#":
        at = rest.find(sep)
        if at != -1 and at < cut:
            cut = at
    authority, path = rest[:cut], rest[cut:]
    if "@" in authority:
        raise Refused(400, "a target with userinfo is not accepted")
    if not authority or _HOST_RE.fullmatch(authority) is None:
        raise Refused(400, "invalid authority in the request target")
    if "#" in path:
        path = path[: path.index("#")]
    if not path.startswith("/"):
        path = "/" + path
    return authority, path


def _origin_form(msg: RawRequestMessage) -> RawRequestMessage:
    """``GET http://a.example/x`` → ``GET /x`` with ``Host: a.example``."""
    authority, target = split_absolute(msg.path)
    headers = CIMultiDict(msg.headers)
    headers[_HOST] = authority  # replaced in place: keeps its position
    raw = tuple(
        (k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
        for k, v in headers.items()
    )
    return msg._replace(
        path=target,
        url=URL(target, encoded=True),
        headers=CIMultiDictProxy(headers),
        raw_headers=raw,
    )


_HOST_CACHE_SIZE: Final = 1024
_RECOVER_BYTEWISE: Final = 8192  # longest line re-parsed a byte at a time after garbage


def valid_host(host: str, cache: dict[str, bool]) -> bool:
    """``host`` matches ``_HOST_RE``. Clients send few distinct hosts: the answer is
    kept in ``cache`` (bounded; one per server), a dict lookup instead of a regex."""
    ok = cache.get(host)
    if ok is None:
        ok = _HOST_RE.fullmatch(host) is not None
        if len(cache) < _HOST_CACHE_SIZE:
            cache[host] = ok
    return ok


def vet(
    msg: RawRequestMessage,
    limits: ListenerLimits,
    hosts: dict[str, bool],
    *,
    big: bool = False,
    underscore: bool = False,
) -> RawRequestMessage:
    """The request as it may be forwarded, or ``Refused`` (see the module docstring).

    ``big``: the head may exceed ``max_head_bytes``; ``underscore``: its bytes held a
    ``_``; each turns on a per-field scan. ``hosts``: the ``valid_host`` cache.
    """
    if msg.method in _REFUSED_METHODS:
        raise Refused(405, f"method {msg.method} is not allowed")
    version = msg.version
    if version != HttpVersion11 and version != HttpVersion10:
        if version.major >= 2:
            raise Refused(505, f"HTTP/{version.major}.{version.minor} is not supported")
        raise Refused(400, f"HTTP/{version.major}.{version.minor} is not supported")
    if big and _head_size(msg) > limits.max_head_bytes:
        raise Refused(431, f"request head larger than {limits.max_head_bytes} bytes")
    if underscore and limits.underscore_headers != "keep":
        msg = _without_underscores(msg, limits.underscore_headers)
    if msg.path[:1] != "/" and msg.path.lower().startswith(_ABSOLUTE):
        msg = _origin_form(msg)
    host = msg.headers.get(_HOST)
    if host is not None and not valid_host(host, hosts):
        raise Refused(400, "invalid Host header")
    te = msg.headers.get(_TRANSFER_ENCODING)
    if te is not None and te.lower() != "chunked":
        raise Refused(501, f"Transfer-Encoding {te[:50]!r} is not supported")
    return msg


class ProxyAnswer(web.Response):
    """An answer of strangler's own (an error, a refusal): no ``Server`` header."""

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        self.headers.popall("Server", None)


class _Handler(RequestHandler):
    """One client connection: aiohttp's handler plus the checks and timers above."""

    __slots__ = (
        "_body_seen",
        "_body_timer",
        "_head_bytes",
        "_head_timer",
        "_hosts",
        "_limits",
        "_payload",
        "_rejected",
        "_suspect",
    )  # fmt: skip

    def __init__(self, manager: ProxyHTTPServer, *, limits: ListenerLimits, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = limits
        self._hosts = manager.host_cache
        self._payload: StreamReader | None = None  # the last parsed request's body
        self._head_bytes = 0  # bytes of a request head not yet complete
        self._suspect = False  # those bytes held a "_"
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_seen = 0.0
        self._rejected = False  # a refusal is queued: nothing more is parsed

    @property
    def idle(self) -> bool:
        """Between requests (or before the first): no request byte in hand, none being
        answered. Such a connection may be closed at any time (RFC 9112 §9.8)."""
        waiter = self._waiter
        return (
            waiter is not None
            and not waiter.done()
            and self._head_bytes == 0
            and not self._rejected
            and not self._upgraded
        )

    def data_received(self, data: bytes) -> None:
        if self._rejected or self._force_close or self._close:
            return  # closing: aiohttp would drop the bytes too
        if self._upgraded or self._payload_parser is not None:
            super().data_received(data)
            return
        payload = self._payload
        in_head = payload is None or payload.is_eof()
        clean = in_head and self._head_bytes == 0
        count = self._request_count
        super().data_received(data)
        emitted = self._request_count - count
        if not in_head and self._body_timer is not None:
            self._body_seen = self._loop.time()
        if emitted == 0:
            if in_head and data:
                self._head_started(data)
            return
        big = self._head_bytes + len(data) > self._limits.max_head_bytes
        underscore = self._suspect or b"_" in data
        self._head_bytes, self._suspect = 0, False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._vet_new(emitted, big, underscore, data if clean else None)

    def _head_started(self, data: bytes) -> None:
        self._head_bytes += len(data)
        if b"_" in data:
            self._suspect = True
        limits = self._limits
        if self._head_bytes > limits.max_head_bytes:
            self._reject(431, f"request head larger than {limits.max_head_bytes} bytes")
            return
        if self._head_timer is None and limits.header_timeout > 0:
            # The head is governed by header_timeout from its first byte, not by the
            # idle (keep-alive) timer aiohttp armed; aiohttp re-arms that one after
            # the answer.
            if self._keepalive_handle is not None:
                self._keepalive_handle.cancel()
                self._keepalive_handle = None
            self._head_timer = self._loop.call_later(limits.header_timeout, self._head_late)

    def _vet_new(self, emitted: int, big: bool, underscore: bool, data: bytes | None) -> None:
        messages = self._messages
        first = len(messages) - emitted
        if data is not None and isinstance(messages[-1][0], _ErrInfo):
            first = self._recover(data, first)
        for i in range(first, len(messages)):
            msg, payload = messages[i]
            if isinstance(msg, _ErrInfo):
                self._rejected = True
                del_after(messages, i)
                break
            try:
                vetted = vet(msg, self._limits, self._hosts, big=big, underscore=underscore)
                messages[i] = (vetted, payload)
            except Refused as e:
                messages[i] = (_ErrInfo(status=e.code, exc=e, message=e.message), EMPTY_PAYLOAD)
                self._rejected = True
                del_after(messages, i)
                break
        last = messages[-1][1] if messages else None
        self._payload = last
        if (
            last is not None
            and not last.is_eof()
            and not self._rejected
            and not self._upgraded
            and self._limits.body_timeout > 0
        ):
            self._body_seen = self._loop.time()
            if self._body_timer is None:
                self._body_timer = self._loop.call_later(self._limits.body_timeout, self._body_late)

    def _recover(self, data: bytes, first: int) -> int:
        """The parser failed on this read and lost the requests before the failure:
        parse the read again, up to the error, so those get their answers first."""
        messages = self._messages
        error = messages.pop()  # the parser's own error: the last thing answered
        lines = data.splitlines(keepends=True)
        got, failed = self._parse_until_error(lines)
        if failed is not None and len(lines[failed]) <= _RECOVER_BYTEWISE:
            # The failing line may end a request (a body without a newline): parse it
            # again a byte at a time (bounded) to keep what comes before the garbage.
            line = lines[failed]
            got, _ = self._parse_until_error(
                [*lines[:failed], *(line[i : i + 1] for i in range(len(line)))]
            )
        for msg, payload in got:
            if not payload.is_eof():  # its body is cut by the garbage: never answered
                break
            messages.append((msg, payload))
        messages.append(error)
        return first

    def _parse_until_error(self, pieces: list[bytes]) -> tuple[list[Any], int | None]:
        """Messages a fresh parser makes of ``pieces`` before it fails, and the index
        of the piece it failed on (``None``: no failure)."""
        parser = HttpRequestParser(
            self,
            self._loop,
            self._read_bufsize,
            max_line_size=self.max_line_size,
            max_field_size=self.max_field_size,
            max_headers=self.max_headers,
            payload_exception=RequestPayloadError,
            auto_decompress=False,
        )
        out: list[Any] = []
        for i, piece in enumerate(pieces):
            try:
                got, upgraded, _tail = parser.feed_data(piece)
            except HttpProcessingError:
                return out, i
            out.extend(got)
            if upgraded:
                break
        return out, None

    def _head_late(self) -> None:
        self._head_timer = None
        self._reject(408, f"request head not complete within {self._limits.header_timeout:g}s")

    def _body_late(self) -> None:
        self._body_timer = None
        payload = self._payload
        if payload is None or payload.is_eof() or self.transport is None or self._upgraded:
            return  # done, gone, or a WebSocket (its own pings keep it honest)
        now = self._loop.time()
        timeout = self._limits.body_timeout
        if self._reading_paused:  # the proxy is not reading: not the client's delay
            self._body_seen = now
        elif now - self._body_seen >= timeout:
            log.info(
                "closing a connection from %s: no request body byte for %gs",
                self.peername,
                timeout,
            )
            self._rejected = True
            self.force_close()
            return
        self._body_timer = self._loop.call_at(self._body_seen + timeout, self._body_late)

    def _reject(self, status: int, message: str) -> None:
        """Stop parsing; answer ``status`` after the requests already queued."""
        self._rejected = True
        exc = Refused(status, message)
        self._messages.append((_ErrInfo(status=status, exc=exc, message=message), EMPTY_PAYLOAD))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; closing the connection")
        if isinstance(exc, Refused):
            status, text = exc.code, f"{exc.message}\n"
        elif _too_large(exc):
            status, text = 431, "request header fields too large\n"
        elif isinstance(exc, HttpProcessingError) or status == 400:
            reason = (message or str(exc) or "malformed request").splitlines()[0]
            status, text = 400, f"bad request: {reason[:200]}\n"
        else:
            log.error("error handling %s %s", request.method, request.path, exc_info=exc)
            text = f"internal error in the proxy ({status})\n"
        if status != 500:
            log.info("rejected a request from %s: %s", request.remote, text.strip())
        resp = ProxyAnswer(status=status, text=text, content_type="text/plain")
        if status in _REFUSAL_STATUSES:
            resp.headers["Proxy-Status"] = _PROXY_STATUS
        if status == 405:
            resp.headers["Allow"] = _ALLOW
        resp.force_close()
        return resp


def _idle(handler: object) -> bool:
    """A connection between requests (``_Handler.idle``, or another listener's
    protocol with an ``idle`` property: ``strangler.h1listen``)."""
    return bool(getattr(handler, "idle", False))


def del_after(messages: deque[Any], index: int) -> None:
    """Drop the queued messages after ``index`` (refused: never answered)."""
    while len(messages) > index + 1:
        messages.pop()


class ProxyHTTPServer(web.Server):
    """``web.Server`` whose connections use the proxy's checks, limits and answers."""

    def __init__(
        self, handler: Any, *, limits: ListenerLimits = ListenerLimits(), **kwargs: Any
    ) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits
        self.host_cache: dict[str, bool] = {}  # valid_host's answers, for every connection
        self.listener: Pausable | None = None  # paused at max_connections
        self.open_connections = 0
        self._draining: set[RequestHandler] = set()  # idle ones closed to make room
        self._paused = False

    def __call__(self) -> RequestHandler:
        kwargs: dict[str, Any] = self._kwargs
        return _Handler(self, loop=self._loop, limits=self.limits, **kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.open_connections += 1
        cap = self.limits.max_connections
        live = self.open_connections - len(self._draining)
        if not cap or live < cap:
            return
        if live > cap:
            # One over the cap: make room by closing idle keep-alive connections, the
            # oldest first (as nginx does), a batch at a time.
            self._drain_idle(max(1, cap // 16))
            live = self.open_connections - len(self._draining)
            if live > cap:  # none idle (or accepted in the same batch): refuse this one
                transport.abort()
        if live >= cap and not self._paused and self.listener is not None and not self._any_idle():
            # Every connection busy: stop accepting, so new clients wait in the backlog.
            self._paused = True
            log.warning(
                "%d busy connections (limits.max_connections): not accepting until one closes",
                cap,
            )
            self.listener.pause()

    def _any_idle(self) -> bool:
        return any(_idle(h) and h not in self._draining for h in self._connections)

    def _drain_idle(self, most: int) -> None:
        idle: list[Any] = []
        for handler in self._connections:  # insertion order: the oldest first
            if len(idle) >= most:
                break
            if _idle(handler) and handler not in self._draining:
                idle.append(handler)
        for handler in idle:
            self._draining.add(handler)
            handler.force_close()  # its connection_lost comes later, from the loop
        if idle:
            log.debug("at limits.max_connections: closed %d idle connections", len(idle))

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.open_connections -= 1
        self._draining.discard(handler)
        live = self.open_connections - len(self._draining)
        if self._paused and live < self.limits.max_connections:
            self._paused = False
            log.info("below limits.max_connections again: accepting")
            if self.listener is not None:
                self.listener.resume()


# Headers aiohttp adds to every response unless present. A proxy passes the
# upstream's answer as it is: what the upstream did not send, the client does not get.
_DEFAULTED: tuple[str, ...] = ("Content-Type", "Server", "Date")


class _Transparent:
    """Mixin: after aiohttp prepared the head, drop the headers it added on its own."""

    _upstream_had: frozenset[str]

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()  # type: ignore[misc]
        headers = self.headers  # type: ignore[attr-defined]
        for name in _DEFAULTED:
            if name not in self._upstream_had:
                headers.popall(name, None)


def _had(headers: CIMultiDict[str]) -> frozenset[str]:
    return frozenset(name for name in _DEFAULTED if name in headers)


class RelayedStreamResponse(_Transparent, web.StreamResponse):
    """A streamed upstream answer, without aiohttp's default headers."""

    def __init__(self, *, status: int, reason: str | None, headers: CIMultiDict[str]) -> None:
        super().__init__(status=status, reason=reason, headers=headers)
        self._upstream_had = _had(headers)


class RelayedResponse(_Transparent, web.Response):
    """A fully buffered upstream answer (sent in one write), without aiohttp's defaults."""

    def __init__(self, *, status: int, reason: str | None, headers: CIMultiDict[str]) -> None:
        super().__init__(status=status, reason=reason, headers=headers)
        self._upstream_had = _had(headers)
