"""The per-request path as a list of steps: match → record → decide → limit →
translate → shadow tap → send (with fallback) → relay.

When a snapshot is adopted (``Proxy.adopt``, before a reload swaps it in), every route
gets its chain of steps (``compile_route``, ``compile_side``: the list a request goes
through, in order); a step a route does not use is not in its chain, so a route with
no translation, shadow or fallback runs none of their code. The steps are in
``strangler.steps`` and with their features (``strangler.translate.step``,
``strangler.shadow.step``); the state they share is ``strangler.exchange.Exchange``.

``Proxy.serve(request, responder)`` runs one request given as the listener-neutral
``strangler.incoming.Request`` and ``Responder``; ``Proxy.handle`` is the aiohttp
low-level handler of the proxy port, through ``strangler.adapter``. A request reads
the current snapshot once, so a reload never changes it half-way. It does no I/O but
the upstream exchange: metrics are in-memory counters and the access log is a queue
put.

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

import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from aiohttp import web

from strangler.accesslog import AccessLog
from strangler.adapter import AiohttpRequest, AiohttpResponder
from strangler.exchange import Exchange, Services, Step, link
from strangler.forward.pool import Forwarder
from strangler.incoming import Request, Responder
from strangler.metrics import Metrics
from strangler.plan.record import Recording
from strangler.progress import ProgressTracker
from strangler.release.controls import ReleaseControls
from strangler.requestid import RequestIds
from strangler.runtime import CompiledRoute, Side, Snapshot, SnapshotHolder
from strangler.shadow.service import ShadowService
from strangler.shadow.step import ShadowTapStep
from strangler.steps import (
    BodyLimit,
    Deadline,
    Decide,
    KeepForFallback,
    Record,
    Relay,
    Send,
    SendWithFallback,
    Upgrade,
)
from strangler.translate.step import TranslatedRelay, TranslateRequestStep

if TYPE_CHECKING:  # an optional extra: imported by server only when tracing is on
    from strangler.tracing import Tracing

Chains = Mapping[str, Step]  # route name -> the first step of its chain
Head = Callable[[], Step]  # makes the step every chain starts with (tracing), or none


def compile_route(
    route: CompiledRoute, snap: Snapshot, ids: RequestIds, head: Head | None = None
) -> Step:
    """The chain of steps a request of ``route`` goes through, once per route when a
    snapshot is adopted. What a request meets, in order:

    0. ``head()``: with tracing on, the request's span (``tracing.TraceSpan``);
    1. ``Record``: metrics, progress and the access log when it ends, whatever happens;
    2. ``Decide``: the release decision and the request id, then the chain of the side
       it picked (``compile_side``); a mistaken override is answered 400.
    """
    sides = {name: compile_side(route, side, snap) for name, side in route.sides.items()}
    first = [] if head is None else [head()]
    return link([*first, Record(), Decide(route, MappingProxyType(sides), ids)])


def compile_side(route: CompiledRoute, side: Side, snap: Snapshot) -> Step:
    """The rest of the chain once ``side`` was decided on. A step a route does not
    use is not in its chain (a plain route: upgrade, limit, send, relay):

    3. ``Upgrade``: a WebSocket upgrade is handed to the listener's relaying;
    4. ``Deadline``: the upstream's ``timeout.total`` over the rest (only when set);
    5. ``BodyLimit``: ``limits.max_body_bytes`` (413);
    6. ``KeepForFallback``: the body kept for a replay (only on the side a fallback
       retries from);
    7. ``TranslateRequestStep``: the request in the new service's shape (only on the
       translated side);
    8. ``ShadowTapStep``: mirror a sampled request (only for a route with shadow, on
       the sides other than the shadow upstream);
    9. ``Send`` or ``SendWithFallback``: the upstream exchange up to its head;
    10. ``Relay`` or ``TranslatedRelay``: the answer streamed back (translated on the
        translated side when the route has response steps).

    With tracing on, each upstream exchange is a span of its own: the upstream pools
    are traced ones (``tracing.TracedH1Pool``), so every send is, fallbacks included.
    """
    name = side.upstream.name
    limit = snap.config.limits.max_body_bytes
    release = route.release
    fallback = release.fallback
    falls_back = fallback is not None and fallback.new == name
    observed = release.observed == name
    plan = route.translate
    translated = not plan.is_empty and route.translate_on == name
    steps: list[Step] = [Upgrade()]
    total = side.upstream.timeouts.total
    if total is not None:
        steps.append(Deadline(total))
    steps.append(BodyLimit(limit))
    if falls_back:
        assert fallback is not None
        steps.append(KeepForFallback(fallback, limit))
    if translated:
        steps.append(TranslateRequestStep(plan, limit))
    sh = route.shadow
    if sh is not None and sh.upstream.name != name:
        steps.append(
            ShadowTapStep(
                sh,
                translate=plan if route.translate_on == sh.upstream.name else None,
                primary_translate=plan if translated else None,
            )
        )
    if falls_back:
        assert fallback is not None
        steps.append(SendWithFallback(fallback, limit, observed))
    else:
        steps.append(Send(limit, observed))
    if translated and plan.response:
        steps.append(TranslatedRelay(plan, name))
    else:
        steps.append(Relay(None if plan.is_empty else plan))
    return link(steps)


def compile_chains(snap: Snapshot, ids: RequestIds, head: Head | None = None) -> Chains:
    chains = {r.name: compile_route(r, snap, ids, head) for r in snap.routes}
    chains[snap.unrouted.name] = compile_route(snap.unrouted, snap, ids, head)
    return MappingProxyType(chains)


class Proxy:
    """The proxy handler and the objects it needs; built by ``server``."""

    __slots__ = ("_chains", "_head", "_snap", "holder", "ids", "recording", "services")

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
        self._head = None if tracing is None else tracing.step  # the span step, when on
        self.services = Services(
            forwarder=forwarder,
            metrics=metrics,
            access_log=access_log,
            progress=progress,
            release=release,
            shadow=shadow,
        )
        self.ids = RequestIds()  # per process: a worker builds its own Proxy
        self.recording = Recording()  # strangler plan --record: a sampler while recording
        self._snap = holder.current
        self._chains = compile_chains(self._snap, self.ids, self._head)

    def adopt(self, snap: Snapshot) -> Chains:
        """Compile ``snap``'s chains (before it is swapped in, on a reload; a request
        that finds another snapshot current adopts it itself)."""
        chains = compile_chains(snap, self.ids, self._head)
        self._snap, self._chains = snap, chains
        return chains

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """The aiohttp handler of the proxy port."""
        responder = AiohttpResponder(request)
        await self.serve(AiohttpRequest(request), responder)
        return responder.response if responder.response is not None else web.StreamResponse()

    async def serve(self, request: Request, responder: Responder) -> None:
        """One request, on the current snapshot: its route, then the route's chain."""
        started = time.perf_counter()
        snap = self.holder.current  # read once: this request lives on this snapshot
        chains = self._chains if snap is self._snap else self.adopt(snap)
        route, params = snap.router.match(request)
        if self.recording.sampler is not None:
            self.recording.sampler.offer(request, route.name)
        x = Exchange(request, responder, self.services, snap, route, params, started)
        await chains[route.name].run(x)
