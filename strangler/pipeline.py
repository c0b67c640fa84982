"""The per-request path in one place: match → forward → stream → record.

``Proxy.handle`` is the aiohttp low-level handler for every request on the proxy port.
It reads the current snapshot once, so a reload never changes a request half-way. It
does no I/O but the upstream exchange: metrics are in-memory counters and the access
log is a queue put.

Failure contract (what the client sees):
- upstream refused / reset / invalid before the response head: 502, one plain line
  naming the upstream; timeout: 504;
- request body over ``limits.max_body_bytes``: 413 (before contacting the upstream
  when Content-Length says so; otherwise the upload is cut and 413 answered);
- failure after the response head was sent: the client connection is aborted, so a
  truncated body can never pass for a complete one;
- the client going away cancels the upstream exchange (aiohttp handler cancellation).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web
from multidict import CIMultiDict, istr

from strangler.accesslog import AccessLog
from strangler.errors import BodyTooLarge, ForwardError, ForwardErrorKind, ForwardStage
from strangler.forward.headers import ForwardedFor, end_to_end
from strangler.forward.pool import Forwarder, UpstreamPool
from strangler.forward.websocket import is_websocket_upgrade, relay_websocket
from strangler.metrics import Metrics
from strangler.progress import ProgressTracker
from strangler.protocol import RelayedResponse, RelayedStreamResponse
from strangler.runtime import CompiledRoute, Snapshot, SnapshotHolder

log = logging.getLogger("strangler.proxy")

_HOST: Final = istr("Host")
_EXPECT: Final = istr("Expect")
_CONTENT_LENGTH: Final = istr("Content-Length")
_NO_BODY: Final = frozenset({204, 304})
_REQUEST_DROP: Final = ("Expect",)  # answered by the proxy itself (100 Continue)
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_STATUS_ABORTED: Final = 499  # access-log status when the exchange was cut (nginx's code)


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


class Proxy:
    """The proxy handler and the objects it needs; built by ``server``."""

    __slots__ = ("access_log", "forwarder", "holder", "metrics", "progress")

    def __init__(
        self,
        holder: SnapshotHolder,
        forwarder: Forwarder,
        metrics: Metrics,
        access_log: AccessLog,
        progress: ProgressTracker,
    ) -> None:
        self.holder = holder
        self.forwarder = forwarder
        self.metrics = metrics
        self.access_log = access_log
        self.progress = progress

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        snap = self.holder.current  # read once: this request lives on this snapshot
        route, _params = snap.router.match(request)
        pool = self.forwarder.pool(route.upstream)
        status, nbytes, aborted = 502, 0, True
        pool.inflight += 1
        try:
            if is_websocket_upgrade(request):
                headers = self._headers(request, pool, snap)
                try:
                    ws, nbytes = await relay_websocket(request, pool, headers)
                except ForwardError as e:
                    status, nbytes, aborted, resp = self._failed(e, request)
                    return resp
                status, aborted = ws.status, False
                return ws
            total = pool.upstream.timeouts.total
            if total is None:
                status, nbytes, aborted, resp = await self._exchange(request, route, pool, snap)
            else:
                status, nbytes, aborted, resp = await self._bounded(
                    request, route, pool, snap, total
                )
            return resp
        except asyncio.CancelledError:
            status, aborted = _STATUS_ABORTED, True
            raise
        finally:
            pool.done()
            elapsed = time.perf_counter() - started
            route.metrics.record(status, elapsed, nbytes, aborted)
            self.progress.record(
                route, request.method, request.path, _STATUS_ABORTED if aborted else status
            )
            self.access_log.log(
                (
                    time.time(),
                    request.method,
                    request.path,
                    route.name,
                    route.upstream.name,
                    _STATUS_ABORTED if aborted else status,
                    nbytes,
                    elapsed * 1000.0,
                    request.remote or "",
                )
            )

    @staticmethod
    def _headers(request: web.BaseRequest, pool: UpstreamPool, snap: Snapshot) -> CIMultiDict[str]:
        """The end-to-end request headers plus Host and the forwarded headers."""
        headers = end_to_end(request.headers, drop=_REQUEST_DROP)
        # Setting replaces in place: Host keeps its position among the client's headers.
        if not pool.preserve_host or _HOST not in headers:
            headers[_HOST] = request.host if pool.preserve_host else pool.host_header
        if snap.config.forwarded.headers:
            client = request.remote or ""
            trusted = client in snap.trusted
            ForwardedFor(client, request.scheme, request.host, trusted).apply(
                headers, request.headers
            )
        return headers

    async def _exchange(
        self,
        request: web.BaseRequest,
        route: CompiledRoute,
        pool: UpstreamPool,
        snap: Snapshot,
    ) -> tuple[int, int, bool, web.StreamResponse]:
        """Forward and stream back; returns (status, body bytes, aborted, response)."""
        limit = snap.config.limits.max_body_bytes
        body: RequestBody | None = None
        if request.body_exists:
            length = request.content_length
            if limit and length is not None and length > limit:
                resp = _plain(413, f"request body larger than {limit} bytes\n")
                return 413, 0, False, resp
            body = RequestBody(request, limit)
        headers = self._headers(request, pool, snap)
        try:
            up = await pool.h1.send(
                request.method,
                pool.target(request.raw_path),
                headers,
                body,
                retry_stale=body is None,
            )
        except BodyTooLarge:
            return 413, 0, False, _plain(413, f"request body larger than {limit} bytes\n")
        except ForwardError as e:
            return self._failed(e, request)

        headers = end_to_end(up.headers)
        if up.complete and (_CONTENT_LENGTH in headers or up.status in _NO_BODY):
            # The whole body came with the head (most API answers): send head and body
            # in one write. Only for Content-Length (or body-less) answers, so the
            # upstream's framing is kept.
            data = up.read_buffered()
            up.release()
            resp = RelayedResponse(status=up.status, reason=up.reason or None, headers=headers)
            if data:
                resp.body = data
            return up.status, len(data), False, resp
        out = RelayedStreamResponse(status=up.status, reason=up.reason or None, headers=headers)
        nbytes = 0
        try:
            await out.prepare(request)
            async for chunk in up.iter_body():
                await out.write(chunk)
                nbytes += len(chunk)
            await out.write_eof()
        except ForwardError as e:
            self._count(e)
            log.warning("%s; aborting the client connection", e)
            if request.transport is not None:
                request.transport.abort()
            return up.status, nbytes, True, out
        finally:
            up.release()
        return up.status, nbytes, False, out

    async def _bounded(
        self,
        request: web.BaseRequest,
        route: CompiledRoute,
        pool: UpstreamPool,
        snap: Snapshot,
        total: float,
    ) -> tuple[int, int, bool, web.StreamResponse]:
        """``_exchange`` within the upstream's ``timeout.total``: 504 when nothing was
        sent yet, an aborted connection when the answer was already streaming."""
        try:
            async with asyncio.timeout(total):
                return await self._exchange(request, route, pool, snap)
        except TimeoutError:
            e = ForwardError(
                pool.upstream.name,
                ForwardStage.RESPONSE_BODY
                if request.writer.output_size
                else ForwardStage.RESPONSE_HEADERS,
                ForwardErrorKind.TIMEOUT,
                f"total {total:g}s",
            )
            if e.stage is ForwardStage.RESPONSE_HEADERS:
                return self._failed(e, request)
            self._count(e)
            log.warning("%s; aborting the client connection", e)
            if request.transport is not None:
                request.transport.abort()
            return 200, 0, True, web.StreamResponse()

    def _failed(
        self, e: ForwardError, request: web.BaseRequest
    ) -> tuple[int, int, bool, web.StreamResponse]:
        self._count(e)
        log.warning("%s %s: %s", request.method, request.path, e)
        return e.status, 0, False, _plain(e.status, e.client_message())

    def _count(self, e: ForwardError) -> None:
        self.metrics.upstream_errors.labels(e.upstream, e.kind.value, e.stage.value).inc()


class RequestBody:
    """The client's body as it arrives (chunks, never lines); raises ``BodyTooLarge``
    past ``limit`` bytes (0: no limit)."""

    __slots__ = ("limit", "request")

    def __init__(self, request: web.BaseRequest, limit: int) -> None:
        self.request = request
        self.limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        request = self.request
        if request.headers.get(_EXPECT, "").lower() == "100-continue":
            # The upstream is connected and wants the body: now tell the client to send it.
            await request.writer.write(_CONTINUE)
        content, limit, seen = request.content, self.limit, 0
        while True:
            chunk = await content.readany()
            if not chunk:
                return
            seen += len(chunk)
            if limit and seen > limit:
                raise BodyTooLarge(limit)
            yield chunk
