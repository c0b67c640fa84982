"""The steps every chain is made of (the feature steps live with their features:
``strangler.translate.step``, ``strangler.shadow.step``). Each is built once per route
(or per side of a route) by ``strangler.pipeline.compile_route``; ``run`` is the
per-request work. The failure contract is ``strangler.pipeline``'s docstring.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping

from strangler.errors import BodyTooLarge, ForwardError, ForwardErrorKind, ForwardStage
from strangler.exchange import STATUS_ABORTED, Exchange, RequestBody, Step
from strangler.forward.h1 import H1Response
from strangler.release import FAILURE_5XX, decide
from strangler.release.decide import FallbackPolicy
from strangler.requestid import REQUEST_ID, RequestIds
from strangler.runtime import CompiledRoute, Side
from strangler.translate import Plan

log = logging.getLogger("strangler.proxy")


class Record(Step):
    """Write the request down when it ends, whatever happened: metrics of the side
    that answered, migration progress, one access-log line. A cancelled exchange (the
    client went away) counts as aborted (499)."""

    __slots__ = ()

    async def run(self, x: Exchange) -> None:
        try:
            await self.next.run(x)
        except asyncio.CancelledError:
            x.done(STATUS_ABORTED, x.nbytes, aborted=True)
            raise
        finally:
            side, request, services = x.side, x.request, x.services
            status = STATUS_ABORTED if x.aborted else x.status
            elapsed = time.perf_counter() - x.started
            side.metrics.record(x.status, elapsed, x.nbytes, x.aborted)
            services.progress.record(
                x.route.name, side.target, request.method, request.path, status
            )
            services.access_log.log(
                (
                    time.time(),
                    request.method,
                    request.path,
                    x.route.name,
                    side.upstream.name,
                    status,
                    x.nbytes,
                    elapsed * 1000.0,
                    request.remote or "",
                    x.rid,
                )
            )


class Decide(Step):
    """The release decision (``strangler.release.decide``), the request id, then the
    chain of the side decided on; a mistaken override is answered 400 here.
    ``sides``: each upstream's chain (``next`` is unused)."""

    __slots__ = ("ids", "route", "sides")

    def __init__(self, route: CompiledRoute, sides: Mapping[str, Step], ids: RequestIds) -> None:
        self.route = route
        self.sides = sides
        self.ids = ids

    async def run(self, x: Exchange) -> None:
        route, request = self.route, x.request
        decision = decide(
            route.release, request, x.services.release.state.for_route(route.name), random.random
        )
        route.decisions[decision.reason].inc()
        x.rid, new = self.ids.take(request.headers.get(REQUEST_ID))
        if new:
            x.rid_new = x.rid
        x.first = x.decision = decision
        x.side = route.sides[decision.upstream]
        if decision.reason == "rejected":
            self._reject(x)
            return
        await self.sides[decision.upstream].run(x)

    def _reject(self, x: Exchange) -> None:
        """A mistaken override (``decide`` row 3b): 400, saying what the route allows.
        Counted as the ``rejected`` release decision."""
        route, request = self.route, x.request
        overrides = route.release.overrides
        assert overrides is not None  # only an override plan rejects
        why = overrides.rejection(request)
        log.info("%s %s: route %r: %s", request.method, request.path, route.name, why)
        x.own(400, why, "http_request_error", f"override: route {route.name!r}")


class Upgrade(Step):
    """A WebSocket upgrade is handed to the listener's relaying (no body limit, no
    deadline: the connection lives as long as its two ends want)."""

    __slots__ = ()

    async def run(self, x: Exchange) -> None:
        if not x.request.upgrade:
            await self.next.run(x)
            return
        pool = x.services.forwarder.pool(x.side.upstream)
        headers = x.upstream_headers(pool)
        pool.inflight += 1
        try:
            status, nbytes = await x.responder.upgrade(pool, headers)
        except ForwardError as e:
            x.failed(e)
            return
        finally:
            pool.done()
        x.done(status, nbytes)


class Deadline(Step):
    """The upstream's ``timeout.total`` over the rest of the chain: 504 when nothing
    was sent yet, an aborted connection when the answer was already going out."""

    __slots__ = ("total",)

    def __init__(self, total: float) -> None:
        self.total = total

    async def run(self, x: Exchange) -> None:
        try:
            async with asyncio.timeout(self.total):
                await self.next.run(x)
        except TimeoutError:
            started = x.responder.started
            stage = ForwardStage.RESPONSE_BODY if started else ForwardStage.RESPONSE_HEADERS
            e = ForwardError(
                x.side.upstream.name, stage, ForwardErrorKind.TIMEOUT, f"total {self.total:g}s"
            )
            if not started:
                x.failed(e)
            else:
                x.cut(e, x.status, x.nbytes)


class BodyLimit(Step):
    """``limits.max_body_bytes``: 413 before contacting the upstream when the
    Content-Length says so; otherwise the body is read as a ``RequestBody`` that
    raises ``BodyTooLarge`` past the limit (the send step answers 413)."""

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        self.limit = limit

    async def run(self, x: Exchange) -> None:
        request = x.request
        if request.body_exists:
            limit, length = self.limit, request.content_length
            if limit and length is not None and length > limit:
                x.too_large(limit)
                return
            x.body = RequestBody(request, limit)
        await self.next.run(x)


class KeepForFallback(Step):
    """On the side a fallback may retry from: when the fallback applies to this
    request, keep its body (up to ``fallback.buffer_bytes``) so it can be sent again."""

    __slots__ = ("fallback", "limit")

    def __init__(self, fallback: FallbackPolicy, limit: int) -> None:
        self.fallback = fallback
        self.limit = limit

    async def run(self, x: Exchange) -> None:
        fallback = self.fallback
        assert x.decision is not None
        replayable = fallback.applies(x.decision, x.request.method)
        body = x.body
        if replayable and isinstance(body, RequestBody):
            try:
                x.body = await body.buffer(fallback.buffer_bytes)
            except BodyTooLarge:
                x.too_large(self.limit)
                return
            replayable = isinstance(x.body, bytes)
        x.replayable = replayable
        await self.next.run(x)


async def send(x: Exchange, side: Side, observed: bool) -> H1Response:
    """One upstream exchange up to the response head (the translated request when a
    translation step made one). ``observed``: feed the route's SLO guard with the
    outcome (the new side's answers only)."""
    request, body, outbound = x.request, x.body, x.outbound
    pool = x.services.forwarder.pool(side.upstream)
    sent = time.perf_counter() if observed else 0.0
    if outbound is None:
        method, target = request.method, pool.target(request.raw_path)
        headers = x.upstream_headers(pool)
    else:
        method, target, headers = outbound.method, pool.target(outbound.target), outbound.headers
        if outbound.body is not None and isinstance(body, bytes | None):
            # The translated body (Content-Length already fixed); a request that had
            # none and still has none is sent without one.
            body = outbound.body if (outbound.body or body is not None) else None
    pool.inflight += 1
    try:
        up = await pool.h1.send(
            method, target, headers, body, retry_stale=body is None or isinstance(body, bytes)
        )
    except ForwardError:
        if observed:
            _observe(x, False, time.perf_counter() - sent)
        raise
    finally:
        pool.done()
    if observed:
        _observe(x, up.status < 500, time.perf_counter() - sent)
    return up


def _observe(x: Exchange, ok: bool, latency: float) -> None:
    guard = x.services.release.guards.get(x.route.name)
    if guard is not None:
        guard.observe(ok, latency)


class Send(Step):
    """Send to the side decided on; the upstream's head goes to ``x.up``. Over the
    body limit: 413; a failure before the head: 502/504."""

    __slots__ = ("limit", "observed")

    def __init__(self, limit: int, observed: bool) -> None:
        self.limit = limit
        self.observed = observed

    async def run(self, x: Exchange) -> None:
        try:
            x.up = await send(x, x.side, self.observed)
        except BodyTooLarge:
            x.too_large(self.limit)
            return
        except ForwardError as e:
            x.failed(e)
            return
        await self.next.run(x)


class SendWithFallback(Step):
    """``Send``, and when the request is replayable (``KeepForFallback``) and the
    failure is one the route falls back on (a ``ForwardError`` kind, or a 5xx), send
    the original request once more to the primary, counted. A fallback sends the
    original request, untranslated."""

    __slots__ = ("fallback", "limit", "observed")

    def __init__(self, fallback: FallbackPolicy, limit: int, observed: bool) -> None:
        self.fallback = fallback
        self.limit = limit
        self.observed = observed

    async def run(self, x: Exchange) -> None:
        fallback = self.fallback
        try:
            up = await send(x, x.side, self.observed)
            if x.replayable and up.status >= 500 and fallback.triggers(FAILURE_5XX):
                up.release()
                up = await self._fall_back(x, FAILURE_5XX)
        except BodyTooLarge:
            x.too_large(self.limit)
            return
        except ForwardError as e:
            if not (x.replayable and fallback.triggers(e.kind.value)):
                x.failed(e)
                return
            x.services.count(e)
            try:
                up = await self._fall_back(x, e.kind.value)
            except ForwardError as e2:
                x.failed(e2)
                return
        x.up = up
        await self.next.run(x)

    async def _fall_back(self, x: Exchange, failure: str) -> H1Response:
        """Send the original request once more, to the primary; count it."""
        fallback, route = self.fallback, x.route
        failed = x.side.upstream.name
        x.side = route.sides[fallback.decision.upstream]
        x.decision = fallback.decision
        route.decisions[fallback.decision.reason].inc()
        x.services.metrics.fallbacks.labels(route.name, failure).inc()
        log.info(
            "%s %s: %s failed (%s); answered by %s",
            x.request.method,
            x.request.path,
            failed,
            failure,
            x.side.upstream.name,
        )
        x.outbound = None  # the original request, untranslated
        return await send(x, x.side, observed=False)


class Relay(Step):
    """The end of a chain: stream the upstream's answer to the client (and a bounded
    copy to a shadow tap). ``observe``: the route's translation plan when the route
    translates another side (its untranslated error answers teach the plan legacy's
    error types)."""

    __slots__ = ("observe",)

    def __init__(self, observe: Plan | None) -> None:
        self.observe = observe

    async def run(self, x: Exchange) -> None:
        up = x.up
        assert up is not None
        if self.observe is not None and up.status >= 400:
            self.observe.observe_legacy(up.status, up.headers)
        await x.relay(up)
