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
- the client going away cancels the upstream exchange (aiohttp handler cancellation);
- an override naming no upstream the route allows, from a client allowed to override:
  400 (``strangler.release.decide``, row 3b).

Every answer strangler makes itself carries ``Proxy-Status`` (RFC 9209, e.g.
``strangler; error=connection_refused; details="upstream 'billing'"``), so it cannot
pass for the application's, and its one line ends with the request id.

Request id: the client's ``X-Request-Id`` when it is safe, else a new one
(``strangler.requestid``); the upstream (and a shadow) receives it, the access log
records it. Debug header: ``strangler.release.explain``, decided per route when the
snapshot is compiled.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Final

from aiohttp import web
from multidict import CIMultiDict, istr

from strangler.accesslog import AccessLog
from strangler.errors import BodyTooLarge, ForwardError, ForwardErrorKind, ForwardStage
from strangler.forward.h1 import H1Response
from strangler.forward.headers import ForwardedFor, end_to_end
from strangler.forward.pool import Forwarder, UpstreamPool
from strangler.forward.websocket import is_websocket_upgrade, relay_websocket
from strangler.metrics import Metrics
from strangler.plan.record import Recording
from strangler.progress import ProgressTracker
from strangler.protocol import ProxyAnswer, RelayedResponse, RelayedStreamResponse
from strangler.release import FAILURE_5XX, Decision, decide
from strangler.release.controls import ReleaseControls
from strangler.release.explain import DEBUG_HEADER, Explainer
from strangler.requestid import REQUEST_ID, RequestIds
from strangler.runtime import CompiledRoute, Side, Snapshot, SnapshotHolder
from strangler.shadow.capture import Capture
from strangler.shadow.service import CompiledShadow, ShadowService, ShadowTap
from strangler.translate import Plan, TranslateError, TranslateRequest, TranslateResponse

if TYPE_CHECKING:  # an optional extra: imported by server only when tracing is on
    from strangler.tracing import Tracing

log = logging.getLogger("strangler.proxy")

_HOST: Final = istr("Host")
_EXPECT: Final = istr("Expect")
_CONTENT_LENGTH: Final = istr("Content-Length")
_NO_BODY: Final = frozenset({204, 304})
_REQUEST_DROP: Final = ("Expect",)  # answered by the proxy itself (100 Continue)
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_STATUS_ABORTED: Final = 499  # access-log status when the exchange was cut (nginx's code)
_PROXY_STATUS: Final = istr("Proxy-Status")


def _plain(status: int, text: str) -> web.Response:
    return ProxyAnswer(status=status, text=text, content_type="text/plain")  # no Server


class _Outcome:
    """What one request ended as: the side that answered and why, status, bytes,
    aborted; and what its answers carry (request id, debug header)."""

    __slots__ = (
        "aborted", "decision", "explain", "nbytes", "rid", "rid_new", "side", "status",
    )  # fmt: skip

    def __init__(
        self,
        side: Side,
        decision: Decision,
        rid: str,
        rid_new: bool,
        explain: Explainer | None,
    ) -> None:
        self.side = side
        self.decision = decision
        self.rid = rid
        self.rid_new = rid if rid_new else None  # the id the upstream must be given
        self.explain = explain
        self.status = 502
        self.nbytes = 0
        self.aborted = True

    def done(self, status: int, nbytes: int = 0, aborted: bool = False) -> None:
        self.status, self.nbytes, self.aborted = status, nbytes, aborted


class Proxy:
    """The proxy handler and the objects it needs; built by ``server``."""

    __slots__ = (
        "access_log", "forwarder", "holder", "ids", "metrics", "progress", "recording",
        "release", "shadow", "tracing",
    )  # fmt: skip

    def __init__(
        self,
        holder: SnapshotHolder,
        forwarder: Forwarder,
        metrics: Metrics,
        access_log: AccessLog,
        progress: ProgressTracker,
        release: ReleaseControls,
        shadow: ShadowService,
        tracing: Tracing | None = None,
    ) -> None:
        self.holder = holder
        self.forwarder = forwarder
        self.metrics = metrics
        self.access_log = access_log
        self.progress = progress
        self.release = release
        self.shadow = shadow
        self.tracing = tracing  # None: off; on, ``handle`` runs inside its span (server)
        self.ids = RequestIds()  # per process: a worker builds its own Proxy
        self.recording = Recording()  # strangler plan --record: a sampler while recording

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        snap = self.holder.current  # read once: this request lives on this snapshot
        route, params = snap.router.match(request)
        if self.recording.sampler is not None:
            self.recording.sampler.offer(request, route.name)
        decision = decide(
            route.release, request, self.release.state.for_route(route.name), random.random
        )
        route.decisions[decision.reason].inc()
        rid, rid_new = self.ids.take(request.headers.get(REQUEST_ID))
        out = _Outcome(route.sides[decision.upstream], decision, rid, rid_new, route.explain)
        try:
            if decision.reason == "rejected":
                return self._rejected(request, route, out)
            if is_websocket_upgrade(request):
                return await self._websocket(request, out, snap)
            total = out.side.upstream.timeouts.total
            if total is None:
                exchange = self._plain if route.plain else self._exchange
                return await exchange(request, route, decision, out, snap, params)
            return await self._bounded(request, route, decision, out, snap, total, params)
        except asyncio.CancelledError:
            out.done(_STATUS_ABORTED, out.nbytes, aborted=True)
            raise
        finally:
            side = out.side
            status = _STATUS_ABORTED if out.aborted else out.status
            elapsed = time.perf_counter() - started
            side.metrics.record(out.status, elapsed, out.nbytes, out.aborted)
            self.progress.record(route.name, side.target, request.method, request.path, status)
            self.access_log.log(
                (
                    time.time(),
                    request.method,
                    request.path,
                    route.name,
                    side.upstream.name,
                    status,
                    out.nbytes,
                    elapsed * 1000.0,
                    request.remote or "",
                    rid,
                )
            )
            if self.tracing is not None:  # tracing hook: the request's route and decision
                self.tracing.record(route, decision, out.decision, side.upstream.name, status)

    @staticmethod
    def _headers(
        request: web.BaseRequest,
        pool: UpstreamPool,
        route: CompiledRoute,
        snap: Snapshot,
        rid: str | None,
    ) -> CIMultiDict[str]:
        """The end-to-end request headers plus Host and the forwarded headers.
        ``rid``: the request id to set (``None``: the client's is kept)."""
        headers = end_to_end(request.headers, drop=_REQUEST_DROP)
        if rid is not None:
            headers[REQUEST_ID] = rid
        # Setting replaces in place: Host keeps its position among the client's headers.
        if not pool.preserve_host or _HOST not in headers:
            headers[_HOST] = request.host if pool.preserve_host else pool.host_header
        overrides = route.release.overrides
        if overrides is not None and overrides.header is not None:
            headers.popall(overrides.header, None)  # a release switch, not the app's business
        fwd = snap.config.forwarded
        if fwd.headers:
            client = request.remote or ""
            trusted = client in snap.trusted
            ForwardedFor(client, request.scheme, request.host, trusted).apply(
                headers, request.headers, fwd.style
            )
        return headers

    async def _websocket(
        self, request: web.BaseRequest, out: _Outcome, snap: Snapshot
    ) -> web.StreamResponse:
        pool = self.forwarder.pool(out.side.upstream)
        route = snap.router.match(request)[0]
        headers = self._headers(request, pool, route, snap, out.rid_new)
        pool.inflight += 1
        try:
            ws, nbytes = await relay_websocket(request, pool, headers)
        except ForwardError as e:
            return self._failed(e, request, out)
        finally:
            pool.done()
        out.done(ws.status, nbytes)
        return ws

    async def _plain(
        self,
        request: web.BaseRequest,
        route: CompiledRoute,
        decision: Decision,
        out: _Outcome,
        snap: Snapshot,
        params: Mapping[str, str],
    ) -> web.StreamResponse:
        """``_exchange`` for a route with no translation, no shadow and no fallback
        (``CompiledRoute.plain``): the body limit, one send, the relay."""
        limit = snap.config.limits.max_body_bytes
        body: RequestBody | None = None
        if request.body_exists:
            length = request.content_length
            if limit and length is not None and length > limit:
                return _too_large(request, out, limit)
            body = RequestBody(request, limit)
        observed = route.release.observed == out.side.upstream.name
        try:
            up = await self._send(request, route, out.side, body, snap, observed, None, out.rid_new)
        except BodyTooLarge:
            return _too_large(request, out, limit)
        except ForwardError as e:
            return self._failed(e, request, out)
        return await self._relay(request, up, out, None)

    async def _exchange(
        self,
        request: web.BaseRequest,
        route: CompiledRoute,
        decision: Decision,
        out: _Outcome,
        snap: Snapshot,
        params: Mapping[str, str],
    ) -> web.StreamResponse:
        """Forward (falling back to the primary when allowed) and stream the answer back.

        On the route's translated side (its new side, when it has ``translate:``), the
        request is translated before it is sent and the answer before it is relayed.
        A fallback to the primary sends the original request, untranslated.
        """
        limit = snap.config.limits.max_body_bytes
        fallback = route.release.fallback
        replayable = fallback is not None and fallback.applies(decision, request.method)
        body: bytes | RequestBody | None = None
        if request.body_exists:
            length = request.content_length
            if limit and length is not None and length > limit:
                return _too_large(request, out, limit)
            body = RequestBody(request, limit)
            if replayable:
                assert fallback is not None
                try:
                    body = await body.buffer(fallback.buffer_bytes)
                except BodyTooLarge:
                    return _too_large(request, out, limit)
                replayable = isinstance(body, bytes)
        plan = route.translate if out.side.upstream.name == route.translate_on else None
        outbound: TranslateRequest | None = None
        original: TranslateRequest | None = None
        if plan is not None:
            pool = self.forwarder.pool(out.side.upstream)
            if plan.needs_request_body and isinstance(body, RequestBody):
                try:
                    body = await body.buffer(plan.max_body)
                except BodyTooLarge:
                    return _too_large(request, out, limit)
            msg = TranslateRequest.from_target(
                request.method,
                request.raw_path,
                self._headers(request, pool, route, snap, out.rid_new),
                params,
                # b"": no body at all (steps and hooks run on an empty body); None: a
                # body too large to read whole (the plan then answers 413 or passes it on)
                body if isinstance(body, bytes) else b"" if body is None else _prefix_of(body),
                origin=f"{request.scheme}://{request.host}",  # for absolute Location URLs
            )
            original = msg.copy() if plan.response else None
            try:
                outbound = plan.apply_request(msg)
            except TranslateError as e:
                return self._untranslatable(e, route, "request", request, out)
        observed = route.release.observed == out.side.upstream.name
        tap = None
        sh = route.shadow
        if sh is not None and self.shadow.selects(sh, request, out.side.upstream):
            tap = self._tap(request, route, sh, out, body, snap, params)
        try:
            try:
                up = await self._send(
                    request, route, out.side, body, snap, observed, outbound, out.rid_new
                )
                if (
                    replayable
                    and up.status >= 500
                    and fallback is not None
                    and fallback.triggers(FAILURE_5XX)
                ):
                    up.release()
                    up = await self._fall_back(request, route, out, body, snap, FAILURE_5XX)
            except BodyTooLarge:
                return _too_large(request, out, limit)
            except ForwardError as e:
                if not (replayable and fallback is not None and fallback.triggers(e.kind.value)):
                    return self._failed(e, request, out)
                self._count(e)
                try:
                    up = await self._fall_back(request, route, out, body, snap, e.kind.value)
                except ForwardError as e2:
                    return self._failed(e2, request, out)
            if plan is not None and plan.response and out.side.upstream.name == route.translate_on:
                return await self._relay_translated(request, up, out, tap, route, plan, original)
            if up.status >= 400:  # the untranslated side's errors: error steps copy the type
                route.translate.observe_legacy(up.status, up.headers)
            return await self._relay(request, up, out, tap)
        finally:
            if tap is not None:
                tap.close(False)  # a no-op when the answer was already handed over

    def _tap(
        self,
        request: web.BaseRequest,
        route: CompiledRoute,
        sh: CompiledShadow,
        out: _Outcome,
        body: bytes | RequestBody | None,
        snap: Snapshot,
        params: Mapping[str, str],
    ) -> ShadowTap | None:
        """Start mirroring this request (the shadow job waits for the primary's answer).
        When the route translates for the shadow upstream, the job translates."""
        pool = self.forwarder.pool(sh.upstream)
        headers = self._headers(request, pool, route, snap, out.rid_new)
        translate = route.translate if route.translate_on == sh.upstream.name else None
        primary = out.side.upstream
        tap = self.shadow.begin(
            sh,
            request,
            headers,
            primary,
            body=body if isinstance(body, bytes) else None,
            translate=translate,
            params=params,
            primary_translate=route.translate if route.translate_on == primary.name else None,
        )
        if tap is not None and tap.request is not None and isinstance(body, RequestBody):
            body.tee = tap.request
        return tap

    async def _send(
        self,
        request: web.BaseRequest,
        route: CompiledRoute,
        side: Side,
        body: bytes | RequestBody | None,
        snap: Snapshot,
        observed: bool,
        outbound: TranslateRequest | None = None,
        rid: str | None = None,
    ) -> H1Response:
        """One upstream exchange up to the response head. ``observed``: feed the
        route's SLO guard with the outcome (the new side's answers only).
        ``outbound``: the translated request to send instead of the client's.
        ``rid``: the request id to give the upstream (``None``: the client's)."""
        pool = self.forwarder.pool(side.upstream)
        sent = time.perf_counter() if observed else 0.0
        if outbound is None:
            method, target = request.method, pool.target(request.raw_path)
            headers = self._headers(request, pool, route, snap, rid)
        else:
            method, target, headers = (
                outbound.method,
                pool.target(outbound.target),
                outbound.headers,
            )
            if outbound.body is not None and isinstance(body, bytes | None):
                # The translated body (Content-Length already fixed); a request that had
                # none and still has none is sent without one.
                body = outbound.body if (outbound.body or body is not None) else None
        pool.inflight += 1
        try:
            up = await pool.h1.send(
                method,
                target,
                headers,
                body,
                retry_stale=body is None or isinstance(body, bytes),
            )
        except ForwardError:
            if observed:
                self._observe(route, False, time.perf_counter() - sent)
            raise
        finally:
            pool.done()
        if observed:
            self._observe(route, up.status < 500, time.perf_counter() - sent)
        return up

    def _observe(self, route: CompiledRoute, ok: bool, latency: float) -> None:
        guard = self.release.guards.get(route.name)
        if guard is not None:
            guard.observe(ok, latency)

    async def _fall_back(
        self,
        request: web.BaseRequest,
        route: CompiledRoute,
        out: _Outcome,
        body: bytes | RequestBody | None,
        snap: Snapshot,
        failure: str,
    ) -> H1Response:
        """Send the original request once more, to the primary; count it."""
        fallback = route.release.fallback
        assert fallback is not None
        failed = out.side.upstream.name
        out.side = route.sides[fallback.decision.upstream]
        out.decision = fallback.decision
        route.decisions[fallback.decision.reason].inc()
        self.metrics.fallbacks.labels(route.name, failure).inc()
        log.info(
            "%s %s: %s failed (%s); answered by %s",
            request.method,
            request.path,
            failed,
            failure,
            out.side.upstream.name,
        )
        return await self._send(
            request, route, out.side, body, snap, observed=False, rid=out.rid_new
        )

    async def _relay(
        self, request: web.BaseRequest, up: H1Response, out: _Outcome, tap: ShadowTap | None
    ) -> web.StreamResponse:
        """Stream the upstream's answer to the client (and a bounded copy to ``tap``)."""
        headers = end_to_end(up.headers)
        if out.explain is not None:
            _explain(request, out, out.explain, headers)
        capture = tap.response if tap is not None else None
        if up.complete and (_CONTENT_LENGTH in headers or up.status in _NO_BODY):
            # The whole body came with the head (most API answers): send head and body
            # in one write. Only for Content-Length (or body-less) answers, so the
            # upstream's framing is kept.
            data = up.read_buffered()
            up.release()
            return _whole(up.status, up.reason or None, headers, data, capture, out)
        return await self._stream_out(
            request, up, out, capture, up.status, up.reason or None, headers, b""
        )

    async def _stream_out(
        self,
        request: web.BaseRequest,
        up: H1Response,
        out: _Outcome,
        capture: Capture | None,
        status: int,
        reason: str | None,
        headers: CIMultiDict[str],
        prefix: bytes,
    ) -> web.StreamResponse:
        """Stream ``prefix`` then the rest of ``up``'s body under the given head."""
        stream = RelayedStreamResponse(status=status, reason=reason, headers=headers)
        nbytes = 0
        if capture is not None:
            capture.head(status, headers)
        try:
            await stream.prepare(request)
            if prefix:
                await stream.write(prefix)
                nbytes += len(prefix)
                if capture is not None:
                    capture.feed(prefix)
            async for chunk in up.iter_body():
                await stream.write(chunk)
                nbytes += len(chunk)
                if capture is not None:
                    capture.feed(chunk)
            await stream.write_eof()
            if capture is not None:
                capture.done(True)
        except ForwardError as e:
            self._count(e)
            log.warning("%s; aborting the client connection", e)
            if request.transport is not None:
                request.transport.abort()
            out.done(status, nbytes, aborted=True)
            return stream
        finally:
            up.release()
        out.done(status, nbytes)
        return stream

    async def _relay_translated(
        self,
        request: web.BaseRequest,
        up: H1Response,
        out: _Outcome,
        tap: ShadowTap | None,
        route: CompiledRoute,
        plan: Plan,
        original: TranslateRequest | None,
    ) -> web.StreamResponse:
        """Translate the new side's answer back into the legacy shape, then relay it."""
        capture = tap.response if tap is not None else None
        bodyless = request.method == "HEAD" or up.status in _NO_BODY
        wants = plan.needs_response_body_for(up.status) and not bodyless
        body: bytes | None = b"" if bodyless else None
        prefix = b""
        if wants:
            parts: list[bytes] = []
            size = 0
            try:
                async for chunk in up.iter_body():
                    parts.append(chunk)
                    size += len(chunk)
                    if size > plan.max_body:
                        break
            except ForwardError as e:
                up.release()
                return self._failed(e, request, out)
            body = b"".join(parts)
            if size > plan.max_body and plan.on_error == "passthrough":
                # Too large to translate, and the route says pass it on as it is: the
                # head steps still apply, the body streams on untouched.
                prefix, body = body, None
        assert original is not None
        msg = TranslateResponse(
            status=up.status,
            reason=up.reason or None,
            headers=end_to_end(up.headers),
            request=original,
            body=body,
        )
        try:
            msg = plan.apply_response(msg)
        except TranslateError as e:
            up.release()
            return self._untranslatable(e, route, "response", request, out)
        if out.explain is not None:
            _explain(request, out, out.explain, msg.headers)
        if request.method == "HEAD" and plan.needs_response_body_for(up.status):
            # The GET answer's body would be translated: its length is unknown here.
            msg.headers.popall(_CONTENT_LENGTH, None)
        if body is None:  # the body was not read: stream it on under the translated head
            if up.complete and not prefix and _CONTENT_LENGTH in msg.headers:
                body = up.read_buffered()  # came whole with the head: one write
                msg.body = body
            else:
                return await self._stream_out(
                    request, up, out, capture, msg.status, msg.reason, msg.headers, prefix
                )
        up.release()
        data = b"" if bodyless else (msg.body or b"")
        return _whole(msg.status, msg.reason, msg.headers, data, capture, out)

    def _untranslatable(
        self,
        e: TranslateError,
        route: CompiledRoute,
        side: str,
        request: web.BaseRequest,
        out: _Outcome,
    ) -> web.StreamResponse:
        self.metrics.translate_errors.labels(route.name, side).inc()
        log.warning("%s %s: route %r: %s", request.method, request.path, route.name, e)
        status = e.status or (400 if side == "request" else 502)
        error = "http_request_error" if status < 500 else "proxy_internal_error"
        return _own(request, out, status, e.client_message(), error, f"translation: {e.step}")

    async def _bounded(
        self,
        request: web.BaseRequest,
        route: CompiledRoute,
        decision: Decision,
        out: _Outcome,
        snap: Snapshot,
        total: float,
        params: Mapping[str, str],
    ) -> web.StreamResponse:
        """``_exchange`` within the upstream's ``timeout.total``: 504 when nothing was
        sent yet, an aborted connection when the answer was already streaming."""
        exchange = self._plain if route.plain else self._exchange
        try:
            async with asyncio.timeout(total):
                return await exchange(request, route, decision, out, snap, params)
        except TimeoutError:
            stage = (
                ForwardStage.RESPONSE_BODY
                if request.writer.output_size
                else ForwardStage.RESPONSE_HEADERS
            )
            e = ForwardError(
                out.side.upstream.name, stage, ForwardErrorKind.TIMEOUT, f"total {total:g}s"
            )
            if stage is ForwardStage.RESPONSE_HEADERS:
                return self._failed(e, request, out)
            self._count(e)
            log.warning("%s; aborting the client connection", e)
            if request.transport is not None:
                request.transport.abort()
            out.done(out.status, out.nbytes, aborted=True)
            return web.StreamResponse()

    def _failed(
        self, e: ForwardError, request: web.BaseRequest, out: _Outcome
    ) -> web.StreamResponse:
        self._count(e)
        log.warning("%s %s: %s", request.method, request.path, e)
        details = f"upstream {e.upstream!r}"
        return _own(request, out, e.status, e.client_message(), e.proxy_status, details)

    def _rejected(
        self, request: web.BaseRequest, route: CompiledRoute, out: _Outcome
    ) -> web.StreamResponse:
        """A mistaken override (``decide`` row 3b): 400, saying what the route allows.
        Counted as the ``rejected`` release decision."""
        overrides = route.release.overrides
        assert overrides is not None  # only an override plan rejects
        why = overrides.rejection(request)
        log.info("%s %s: route %r: %s", request.method, request.path, route.name, why)
        return _own(request, out, 400, why, "http_request_error", f"override: route {route.name!r}")

    def _count(self, e: ForwardError) -> None:
        self.metrics.upstream_errors.labels(e.upstream, e.kind.value, e.stage.value).inc()


def _own(
    request: web.BaseRequest, out: _Outcome, status: int, text: str, error: str, details: str
) -> web.Response:
    """An answer strangler makes itself: one plain line ending with the request id,
    marked with ``Proxy-Status`` (RFC 9209) so it cannot pass for the application's."""
    out.done(status)
    resp = _plain(status, f"{text} (request id {out.rid})\n")
    # details: our own text (names, numbers): no quote or backslash to escape
    resp.headers[_PROXY_STATUS] = f'strangler; error={error}; details="{details}"'
    if out.explain is not None:
        _explain(request, out, out.explain, resp.headers)
    return resp


def _too_large(request: web.BaseRequest, out: _Outcome, limit: int) -> web.Response:
    text = f"request body larger than {limit} bytes"
    return _own(request, out, 413, text, "http_request_denied", "limits.max_body_bytes")


def _explain(
    request: web.BaseRequest,
    out: _Outcome,
    explain: Explainer,
    headers: CIMultiDict[str],
) -> None:
    """Add the debug header (``X-Strangler-Route``) for the side that answered."""
    d = out.decision
    value = explain.value(request, out.side.upstream.name, d.reason, d.cohort)
    if value is not None:
        headers[DEBUG_HEADER] = value


def _whole(
    status: int,
    reason: str | None,
    headers: CIMultiDict[str],
    data: bytes,
    capture: Capture | None,
    out: _Outcome,
) -> web.StreamResponse:
    """An answer whose body is all in hand: head and body go out in one write."""
    resp = RelayedResponse(status=status, reason=reason, headers=headers)
    if data:
        resp.body = data
    if capture is not None:
        capture.head(status, headers)
        capture.feed(data)
        capture.done(True)
    out.done(status, len(data))
    return resp


class RequestBody:
    """The client's body as it arrives (chunks, never lines); raises ``BodyTooLarge``
    past ``limit`` bytes (0: no limit).

    ``buffer(keep)`` reads it into memory when it is at most ``keep`` bytes; a longer
    body stays a stream that starts with the ``prefix`` already read, and may be
    buffered again with a larger ``keep`` (a translation after a fallback buffer).
    """

    __slots__ = ("_continued", "limit", "prefix", "request", "tee")

    def __init__(self, request: web.BaseRequest, limit: int) -> None:
        self.request = request
        self.limit = limit
        self.prefix = b""  # read already, not yet sent
        self.tee: Capture | None = None  # a shadow job's bounded copy of the body
        self._continued = False

    async def _continue(self) -> None:
        if self._continued:
            return
        self._continued = True
        if self.request.headers.get(_EXPECT, "").lower() == "100-continue":
            # The body is wanted now (the upstream is connected, or it is being kept
            # for a fallback or a translation): tell the client to send it.
            await self.request.writer.write(_CONTINUE)

    async def buffer(self, keep: int) -> bytes | RequestBody:
        """The whole body if it is at most ``keep`` bytes, else this stream (with what
        was read kept as ``prefix``)."""
        await self._continue()
        content, seen = self.request.content, len(self.prefix)
        parts = [self.prefix]
        while seen <= keep:
            chunk = await content.readany()
            if not chunk:
                self.prefix = b""
                return b"".join(parts)
            seen += len(chunk)
            if self.limit and seen > self.limit:
                raise BodyTooLarge(self.limit)
            parts.append(chunk)
        self.prefix = b"".join(parts)
        return self

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await self._continue()
        prefix, tee = self.prefix, self.tee
        if prefix:
            if tee is not None:
                tee.feed(prefix)
            yield prefix
        content, limit, seen = self.request.content, self.limit, len(prefix)
        while True:
            chunk = await content.readany()
            if not chunk:
                if tee is not None:
                    tee.done(True)
                return
            seen += len(chunk)
            if limit and seen > limit:
                raise BodyTooLarge(limit)
            if tee is not None:
                tee.feed(chunk)
            yield chunk


def _prefix_of(body: RequestBody | None) -> bytes | None:
    """What a translation may read of a body that was not kept whole: the part read so
    far when it was over the limit (so the plan can say 413), else nothing."""
    return body.prefix if body is not None and body.prefix else None
