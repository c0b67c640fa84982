"""One request on its way through a route's chain: the state the steps share, the step
interface, and the answers every step may give.

A chain (``strangler.pipeline.compile_route``) is a linked list of ``Step`` objects
built once per route when a snapshot is adopted; a step holds only what it was
compiled with, never per-request state. ``Step.run(x)`` does the step's work on the
``Exchange`` ``x`` and calls ``self.next.run(x)`` to go on (a step that answers the
client itself does not): so a step may wrap the rest of the chain (``try``/``finally``,
a deadline), and the order of the list is the order of the onion.

An ``Exchange`` is made per request: the ``Request`` and ``Responder`` of the listener
(``strangler.incoming``), the snapshot and route, the decision and the side it picked,
the body (``RequestBody``), what the steps produced (``outbound``, ``tap``, ``up``) and
the outcome (``status``, ``nbytes``, ``aborted``) the record step writes down.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Final

from multidict import CIMultiDict, istr

from strangler.accesslog import AccessLog
from strangler.errors import BodyTooLarge, ForwardError
from strangler.forward.headers import ForwardedFor, end_to_end
from strangler.forward.pool import Forwarder, UpstreamPool
from strangler.incoming import Request, Responder
from strangler.metrics import Metrics
from strangler.progress import ProgressTracker
from strangler.release import Decision
from strangler.release.controls import ReleaseControls
from strangler.release.explain import DEBUG_HEADER
from strangler.requestid import REQUEST_ID
from strangler.runtime import CompiledRoute, Side, Snapshot
from strangler.shadow.capture import Capture
from strangler.shadow.service import ShadowService

if TYPE_CHECKING:
    from strangler.forward.h1 import H1Response
    from strangler.shadow.service import ShadowTap
    from strangler.translate import TranslateRequest

log = logging.getLogger("strangler.proxy")

_HOST: Final = istr("Host")
_CONTENT_LENGTH: Final = istr("Content-Length")
_PROXY_STATUS: Final = "Proxy-Status"
_REQUEST_DROP: Final = ("Expect",)  # answered by the proxy itself (100 Continue)
NO_BODY: Final = frozenset({204, 304})
STATUS_ABORTED: Final = 499  # access-log status when the exchange was cut (nginx's code)


class Services:
    """The per-process objects steps use (one per ``Proxy``): pools, metrics, release
    state, shadow lanes, progress and the access log."""

    __slots__ = ("access_log", "forwarder", "metrics", "progress", "release", "shadow")

    def __init__(
        self,
        *,
        forwarder: Forwarder,
        metrics: Metrics,
        access_log: AccessLog,
        progress: ProgressTracker,
        release: ReleaseControls,
        shadow: ShadowService,
    ) -> None:
        self.forwarder = forwarder
        self.metrics = metrics
        self.access_log = access_log
        self.progress = progress
        self.release = release
        self.shadow = shadow

    def count(self, e: ForwardError) -> None:
        self.metrics.upstream_errors.labels(e.upstream, e.kind.value, e.stage.value).inc()


class Exchange:
    """One request's state along its chain (see the module docstring)."""

    __slots__ = (
        "aborted", "body", "decision", "first", "nbytes", "original", "outbound", "params",
        "replayable", "request", "responder", "rid", "rid_new", "route", "services",
        "side", "snap", "started", "status", "tap", "up",
    )  # fmt: skip

    def __init__(
        self,
        request: Request,
        responder: Responder,
        services: Services,
        snap: Snapshot,
        route: CompiledRoute,
        params: Mapping[str, str],
        started: float,
    ) -> None:
        self.request = request
        self.responder = responder
        self.services = services
        self.snap = snap
        self.route = route
        self.params = params
        self.started = started
        self.side: Side = route.default  # until the decision step picks one
        self.decision: Decision | None = None
        self.first: Decision | None = None  # the decision made (``decision``: what answered)
        self.rid = ""
        self.rid_new: str | None = None  # the id the upstream must be given
        self.status = 502
        self.nbytes = 0
        self.aborted = True
        self.body: bytes | RequestBody | None = None
        self.replayable = False  # the body is kept whole for a fallback
        self.outbound: TranslateRequest | None = None  # the translated request
        self.original: TranslateRequest | None = None  # the request before translation
        self.tap: ShadowTap | None = None
        self.up: H1Response | None = None

    def done(self, status: int, nbytes: int = 0, aborted: bool = False) -> None:
        self.status, self.nbytes, self.aborted = status, nbytes, aborted

    # ------------------------------------------------------------------ upstream head

    def upstream_headers(self, pool: UpstreamPool) -> CIMultiDict[str]:
        """The end-to-end request headers plus Host and the forwarded headers, for
        ``pool``'s upstream (with the new request id when the client gave none)."""
        request, route = self.request, self.route
        headers = end_to_end(request.headers, drop=_REQUEST_DROP)
        if self.rid_new is not None:
            headers[REQUEST_ID] = self.rid_new
        # Setting replaces in place: Host keeps its position among the client's headers.
        if not pool.preserve_host or _HOST not in headers:
            headers[_HOST] = request.host if pool.preserve_host else pool.host_header
        overrides = route.release.overrides
        if overrides is not None and overrides.header is not None:
            headers.popall(overrides.header, None)  # a release switch, not the app's business
        fwd = self.snap.config.forwarded
        if fwd.headers:
            client = request.remote or ""
            trusted = client in self.snap.trusted
            ForwardedFor(client, request.scheme, request.host, trusted).apply(
                headers, request.headers, fwd.style
            )
        return headers

    # ------------------------------------------------------------------ our answers

    def explain_into(self, headers: CIMultiDict[str]) -> None:
        """Add the debug header (``X-Strangler-Route``) for the side that answered."""
        explain, d = self.route.explain, self.decision
        if explain is None or d is None:
            return
        value = explain.value(self.request, self.side.upstream.name, d.reason, d.cohort)
        if value is not None:
            headers[DEBUG_HEADER] = value

    def own(self, status: int, text: str, error: str, details: str) -> None:
        """An answer strangler makes itself: one plain line ending with the request id,
        marked with ``Proxy-Status`` (RFC 9209) so it cannot pass for the application's."""
        self.done(status)
        headers: CIMultiDict[str] = CIMultiDict()
        # details: our own text (names, numbers): no quote or backslash to escape
        headers[_PROXY_STATUS] = f'strangler; error={error}; details="{details}"'
        self.explain_into(headers)
        self.responder.answer(status, f"{text} (request id {self.rid})\n", headers)

    def too_large(self, limit: int) -> None:
        text = f"request body larger than {limit} bytes"
        self.own(413, text, "http_request_denied", "limits.max_body_bytes")

    def failed(self, e: ForwardError) -> None:
        self.services.count(e)
        log.warning("%s %s: %s", self.request.method, self.request.path, e)
        details = f"upstream {e.upstream!r}"
        self.own(e.status, e.client_message(), e.proxy_status, details)

    def cut(self, e: ForwardError, status: int, nbytes: int) -> None:
        """A failure after the answer started: abort the client's connection."""
        self.services.count(e)
        log.warning("%s; aborting the client connection", e)
        self.responder.abort()
        self.done(status, nbytes, aborted=True)

    # ------------------------------------------------------------------ relaying

    def whole(
        self,
        status: int,
        reason: str | None,
        headers: CIMultiDict[str],
        data: bytes,
        capture: Capture | None,
    ) -> None:
        """An answer whose body is all in hand: head and body go out in one write."""
        self.responder.whole(status, reason, headers, data)
        if capture is not None:
            capture.head(status, headers)
            capture.feed(data)
            capture.done(True)
        self.done(status, len(data))

    async def relay(self, up: H1Response) -> None:
        """Stream the upstream's answer to the client (and a bounded copy to the tap)."""
        headers = end_to_end(up.headers)
        if self.route.explain is not None:
            self.explain_into(headers)
        tap = self.tap
        capture = tap.response if tap is not None else None
        if up.complete and (_CONTENT_LENGTH in headers or up.status in NO_BODY):
            # The whole body came with the head (most API answers): send head and body
            # in one write. Only for Content-Length (or body-less) answers, so the
            # upstream's framing is kept.
            data = up.read_buffered()
            up.release()
            self.whole(up.status, up.reason or None, headers, data, capture)
            return
        await self.stream_out(up, capture, up.status, up.reason or None, headers, b"")

    async def stream_out(
        self,
        up: H1Response,
        capture: Capture | None,
        status: int,
        reason: str | None,
        headers: CIMultiDict[str],
        prefix: bytes,
    ) -> None:
        """Stream ``prefix`` then the rest of ``up``'s body under the given head."""
        responder = self.responder
        nbytes = 0
        if capture is not None:
            capture.head(status, headers)
        try:
            await responder.start(status, reason, headers)
            if prefix:
                await responder.write(prefix)
                nbytes += len(prefix)
                if capture is not None:
                    capture.feed(prefix)
            async for chunk in up.iter_body():
                await responder.write(chunk)
                nbytes += len(chunk)
                if capture is not None:
                    capture.feed(chunk)
            await responder.end()
            if capture is not None:
                capture.done(True)
        except ForwardError as e:
            self.cut(e, status, nbytes)
            return
        finally:
            up.release()
        self.done(status, nbytes)


class Step:
    """One step of a compiled chain: ``run`` does its work and calls
    ``self.next.run(x)`` to go on (``next`` is set by ``link``)."""

    __slots__ = ("next",)

    next: Step

    async def run(self, x: Exchange) -> None:
        raise NotImplementedError


def link(steps: list[Step]) -> Step:
    """Chain ``steps`` in order; returns the first."""
    for step, after in itertools.pairwise(steps):
        step.next = after
    return steps[0]


class RequestBody:
    """The client's body as it arrives (chunks, never lines); raises ``BodyTooLarge``
    past ``limit`` bytes (0: no limit).

    ``buffer(keep)`` reads it into memory when it is at most ``keep`` bytes; a longer
    body stays a stream that starts with the ``prefix`` already read, and may be
    buffered again with a larger ``keep`` (a translation after a fallback buffer).
    """

    __slots__ = ("_continued", "limit", "prefix", "request", "tee")

    def __init__(self, request: Request, limit: int) -> None:
        self.request = request
        self.limit = limit
        self.prefix = b""  # read already, not yet sent
        self.tee: Capture | None = None  # a shadow job's bounded copy of the body
        self._continued = False

    async def _continue(self) -> None:
        if self._continued:
            return
        self._continued = True
        if self.request.expects_continue:
            # The body is wanted now (the upstream is connected, or it is being kept
            # for a fallback or a translation): tell the client to send it.
            await self.request.body.send_continue()

    async def buffer(self, keep: int) -> bytes | RequestBody:
        """The whole body if it is at most ``keep`` bytes, else this stream (with what
        was read kept as ``prefix``)."""
        await self._continue()
        content, seen = self.request.body, len(self.prefix)
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
        content, limit, seen = self.request.body, self.limit, len(prefix)
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


def prefix_of(body: RequestBody | None) -> bytes | None:
    """What a translation may read of a body that was not kept whole: the part read so
    far when it was over the limit (so the plan can say 413), else nothing."""
    return body.prefix if body is not None and body.prefix else None


def steps_of(first: Step) -> list[Step]:
    """The steps of a chain in order (for tests and ``strangler`` diagnostics)."""
    steps = [first]
    while (after := getattr(steps[-1], "next", None)) is not None:
        steps.append(after)
    return steps
