"""OpenTelemetry traces of proxied requests (``tracing:``; ``pip install 'strangler[otel]'``).

Only ``server`` imports this module, and only when the config has ``tracing:``: the
OpenTelemetry packages are an optional extra. With tracing off nothing here is built
and the request path is exactly the untraced one (the hooks below are chosen when
the server starts and the chains compiled, never tested per request).

What a request produces (one ``Tracing`` per process: each worker exports its own):

=========================  ========  ===================================================
span                       kind      parent, attributes
=========================  ========  ===================================================
``GET invoices-read``      SERVER    the client's W3C ``traceparent`` (else a new trace);
                                     ``strangler.route``/``owner``/``upstream``/``target``,
                                     ``strangler.decision`` (the release reason),
                                     ``strangler.fallback``, ``strangler.translated``,
                                     ``strangler.shadow`` (mirrored), HTTP method/status
``GET billing``            CLIENT    the request span; one per upstream exchange (two
                                     after a fallback); ``strangler.upstream``, status,
                                     ``error.type`` and ``strangler.stage`` on failure;
                                     ends when the response head arrived; not made
                                     for an unsampled request
``shadow invoices-read``   INTERNAL  a new trace *linked* to the request span (sampled
                                     when the request is); ``strangler.shadow.outcome``
                                     (match, mismatch, error, skipped, unstable); its
                                     exchanges are CLIENT children
=========================  ========  ===================================================

The upstream receives ``traceparent`` (and ``tracestate``) naming its CLIENT span (the
request span when unsampled), so its own spans nest under the proxy's. Sampling:
parent-based (a client's sampled flag is followed), ``tracing.sample`` for new traces.
Spans leave through a batch processor (its own thread; a full queue drops spans, never
blocks a request) to ``tracing.otlp``; ``shutdown`` flushes them at the end of the drain.

Hooks, each chosen at start (see ``server``):
- ``Tracing.step``: the first step of every route's chain (``TraceSpan``): the
  request inside its span, whichever listener parsed it;
- ``Tracing.h1_pool``: the upstream connection pool class (``Forwarder(h1=...)``),
  whose ``send`` is the CLIENT span and sets ``traceparent``;
- ``Tracing.record``: ``TraceSpan`` puts the request's route and decision on it;
- ``Tracing.mirrored`` / ``Tracing.shadow``: ``ShadowService`` marks a mirrored
  request and runs each shadow job inside its linked span.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import threading
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from typing import Any, Final

from multidict import CIMultiDict
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

from strangler import __version__
from strangler.config.model import TracingSettings
from strangler.errors import ForwardError
from strangler.exchange import STATUS_ABORTED, Exchange, Step
from strangler.forward.h1 import H1Pool, H1Response
from strangler.release import Decision as Release
from strangler.runtime import CompiledRoute
from strangler.shadow.job import JobOutcome, ShadowJob

__all__ = ["Tracing"]

log = logging.getLogger("strangler.tracing")

_EXPORT_TIMEOUT: Final = 10.0  # seconds per OTLP request, in the exporter's thread
_STOPPING: Final = 1.0  # seconds for the exporter's thread to end once told to stop
_ROOT: Final = Context()  # an empty context: a shadow span starts its own trace


class _Sampler(Sampler):
    """Parent-based with ``ratio`` for new traces; a span with no parent but a link
    (a shadow job) follows the linked span's sampled flag, so a shadow is recorded
    exactly when the request it mirrors is."""

    def __init__(self, ratio: float) -> None:
        self._parent_based = ParentBased(TraceIdRatioBased(ratio))
        self._ratio = ratio

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if links and not trace.get_current_span(parent_context).get_span_context().is_valid:
            sampled = links[0].context.trace_flags.sampled
            decision = Decision.RECORD_AND_SAMPLE if sampled else Decision.DROP
            return SamplingResult(decision, attributes if sampled else None)
        return self._parent_based.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"strangler(parent-based, root ratio {self._ratio:g}, links followed)"


class Tracing:
    """One process's tracer provider, exporter and hooks."""

    def __init__(self, settings: TracingSettings) -> None:
        self.settings = settings
        resource = Resource.create(
            {
                "service.name": settings.service_name,
                "service.version": __version__,
                # one per worker: each process exports its own spans
                "service.instance.id": f"{socket.gethostname()}:{os.getpid()}",
            }
        )
        # No exit hook of the SDK's own: ``shutdown`` flushes at the drain, bounded; a
        # hook would export again at exit, retrying while a collector is down.
        self.provider = TracerProvider(
            resource=resource, sampler=_Sampler(settings.sample), shutdown_on_exit=False
        )
        self._exporter: SpanExporter = OTLPSpanExporter(
            endpoint=settings.endpoint, timeout=_EXPORT_TIMEOUT
        )
        self.provider.add_span_processor(BatchSpanProcessor(self._exporter))
        self.tracer = self.provider.get_tracer("strangler", __version__)
        self.propagator = TraceContextTextMapPropagator()
        self.h1_pool: Callable[..., H1Pool] = functools.partial(TracedH1Pool, self)

    def step(self) -> TraceSpan:
        """A new first step for a route's chain: the request's span (``pipeline``)."""
        return TraceSpan(self)

    @staticmethod
    def record(
        route: CompiledRoute, first: Release, last: Release, upstream: str, status: int
    ) -> None:
        """The request's route and release decision, on its span (``TraceSpan``).
        ``first``: the decision made; ``last``: the one that answered (a fallback)."""
        span = trace.get_current_span()
        if not span.is_recording():
            return
        if isinstance(span, ReadableSpan):
            span.update_name(f"{span.name} {route.name}")
        translated = route.translate_on == upstream and not route.translate.is_empty
        span.set_attributes(
            {
                "strangler.route": route.name,
                "strangler.owner": route.owner,
                "strangler.upstream": upstream,
                "strangler.target": route.sides[upstream].target,
                "strangler.decision": first.reason,
                "strangler.fallback": last is not first and last.reason == "fallback",
                "strangler.translated": translated,
                "http.response.status_code": status,
            }
        )
        if first.cohort is not None:
            span.set_attribute("strangler.cohort", first.cohort)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))

    def mirrored(self, headers: CIMultiDict[str]) -> None:
        """A shadow job was submitted for the current request: mark its span and put
        its context in the job's headers (the shadow span links to it)."""
        span = trace.get_current_span()
        span.set_attribute("strangler.shadow", True)
        self.propagator.inject(headers, context=_in_context(span))

    async def shadow(self, job: ShadowJob, run: Callable[[], Awaitable[JobOutcome]]) -> None:
        """Run one shadow job inside its own span, in a new trace linked to the
        request it mirrors (whose context ``mirrored`` put in the job's headers)."""
        primary = trace.get_current_span(self.propagator.extract(job.headers)).get_span_context()
        span = self.tracer.start_span(
            f"shadow {job.route}",
            context=_ROOT,
            kind=SpanKind.INTERNAL,
            links=[Link(primary)] if primary.is_valid else None,
            attributes={"strangler.route": job.route, "strangler.upstream": job.upstream.name},
        )
        token = otel_context.attach(_in_context(span))
        try:
            outcome = await run()
            span.set_attribute("strangler.shadow.outcome", outcome)
        finally:
            otel_context.detach(token)
            span.end()

    async def shutdown(self, deadline: float) -> None:
        """Export what is left and stop the exporter (the end of a drain), waiting at
        most ``deadline`` seconds: a collector that is down (the exporter retries)
        must not hold the drain. Blocking work, so in a daemon thread of its own."""
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def work() -> None:
            try:
                self.provider.shutdown()
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                    loop.call_soon_threadsafe(done.set)

        threading.Thread(target=work, name="tracing-shutdown", daemon=True).start()
        try:
            await asyncio.wait_for(done.wait(), deadline)
        except TimeoutError:
            log.warning("tracing: spans not exported within %gs of the drain: dropped", deadline)
            # Wakes the exporter from its retries (it gives up at once), so the thread
            # ends now instead of retrying on in the background. A request hanging on
            # a collector may keep it a little longer: a daemon thread, not waited for.
            self._exporter.shutdown()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), _STOPPING)


def _in_context(span: trace.Span) -> Context:
    return trace.set_span_in_context(span, _ROOT)


class TracedH1Pool(H1Pool):
    """``H1Pool`` whose ``send`` is a CLIENT span (child of the current span) and
    gives the upstream ``traceparent`` naming it."""

    def __init__(self, tracing: Tracing, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tracing = tracing

    async def send(
        self,
        method: str,
        target: str,
        headers: CIMultiDict[str],
        body: bytes | AsyncIterable[bytes] | None,
        *,
        retry_stale: bool,
    ) -> H1Response:
        tracing = self._tracing
        if not trace.get_current_span().is_recording():
            # An unsampled request: no child span to record, so none is made (the
            # SDK's span start is most of tracing's cost); the upstream continues
            # the request span's context, unsampled.
            tracing.propagator.inject(headers)
            return await super().send(method, target, headers, body, retry_stale=retry_stale)
        span = tracing.tracer.start_span(
            f"{method} {self.name}",
            kind=SpanKind.CLIENT,
            attributes={
                "strangler.upstream": self.name,
                "http.request.method": method,
                "server.address": self.host,
                "server.port": self.port,
            },
        )
        # Replaces the client's traceparent (copied with the end-to-end headers).
        tracing.propagator.inject(headers, context=_in_context(span))
        try:
            resp = await super().send(method, target, headers, body, retry_stale=retry_stale)
        except ForwardError as e:
            span.set_attributes({"error.type": e.kind.value, "strangler.stage": e.stage.value})
            span.set_status(Status(StatusCode.ERROR, str(e)))
            span.end()
            raise
        except BaseException as e:
            span.set_status(Status(StatusCode.ERROR, type(e).__name__))
            span.end()
            raise
        span.set_attribute("http.response.status_code", resp.status)
        if resp.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        return resp


class TraceSpan(Step):
    """First in every route's chain when tracing is on: the request runs inside a
    SERVER span continuing the client's ``traceparent``, which gets the route and the
    release decision when the request ends (after ``Record``: metrics and the access
    log never depend on it). Either listener's requests are traced alike."""

    __slots__ = ("tracing",)

    def __init__(self, tracing: Tracing) -> None:
        self.tracing = tracing

    async def run(self, x: Exchange) -> None:
        t, request = self.tracing, x.request
        span = t.tracer.start_span(
            request.method,
            context=t.propagator.extract(request.headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "url.path": request.path},
        )
        token = otel_context.attach(_in_context(span))
        try:
            await self.next.run(x)
        except asyncio.CancelledError:
            span.set_status(Status(StatusCode.ERROR, "the client went away"))
            raise
        finally:
            if x.first is not None and x.decision is not None:
                status = STATUS_ABORTED if x.aborted else x.status
                t.record(x.route, x.first, x.decision, x.side.upstream.name, status)
            otel_context.detach(token)
            span.end()
