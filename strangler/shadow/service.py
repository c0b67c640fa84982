"""What the proxy holds for shadow traffic: one bounded lane per route, the results, and
the request-path entry points ``selects`` and ``begin``.

Wiring (see the issue's notes for the pipeline code):

- compile time (per snapshot): ``compile_shadow(route.name, route.shadow, upstreams)``
  for each route with a ``shadow`` spec; keep it on the compiled route (``None``
  otherwise, so routes without shadow pay one attribute check);
- after each (re)load: ``service.configure(compiled_shadows)``;
- per request, on a route with shadow: ``if service.selects(shadow, request,
  upstream)``, build the headers and ``tap = service.begin(shadow, request, headers,
  upstream, body=...)`` before forwarding (so nothing is built for requests the
  percentage leaves out). ``None``: not mirrored. Otherwise feed ``tap.request`` with
  the client's body chunks (if any) and ``tap.response`` with the primary's head and
  body chunks, and call ``tap.close(False)`` in a ``finally`` (a no-op for what was
  already ended);
- shutdown, after in-flight requests finished and before pools close:
  ``await service.drain(deadline)``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

from multidict import CIMultiDict, CIMultiDictProxy

from strangler.config.model import EMPTY_MAP, Upstream
from strangler.config.shadow_model import ShadowSpec
from strangler.shadow.capture import Capture
from strangler.shadow.compare import Rules
from strangler.shadow.job import (
    ConfirmBudget,
    JobOutcome,
    PoolFor,
    ShadowJob,
    run,
    should_shadow,
)
from strangler.shadow.runner import ShadowRunner
from strangler.shadow.samples import RouteResults, ShadowResults
from strangler.translate import Plan

if TYPE_CHECKING:  # an optional extra: imported by server only when tracing is on
    from strangler.tracing import Tracing

__all__ = ["CompiledShadow", "ShadowService", "ShadowTap", "compile_shadow"]


@dataclass(frozen=True, slots=True)
class CompiledShadow:
    """A route's shadow spec, resolved and compiled once per snapshot."""

    route: str
    spec: ShadowSpec
    upstream: Upstream
    rules: Rules


def compile_shadow(
    route: str, spec: ShadowSpec, upstreams: Mapping[str, Upstream]
) -> CompiledShadow:
    """Resolve ``spec.to`` and compile the compare rules (a validated config always
    names a declared upstream)."""
    return CompiledShadow(
        route=route,
        spec=spec,
        upstream=upstreams[spec.to],
        rules=Rules.from_spec(spec.compare),
    )


@dataclass(slots=True)
class ShadowTap:
    """The proxy's side of one mirrored request.

    ``request``: feed the client's body chunks as they stream to the primary, then
    ``request.done(True)`` once the body ended (``None`` when the request has no
    body). ``response``: ``response.head(status, headers)`` when the primary's head
    arrives, ``response.feed(chunk)`` per body chunk, ``response.done(complete)`` at
    the end. ``close(complete)`` ends whatever is still open (an unfinished request
    body counts as incomplete); idempotent, for a ``finally``.
    """

    request: Capture | None
    response: Capture

    def close(self, complete: bool) -> None:
        if self.request is not None:
            self.request.done(False)  # no-op when the body iterator already ended it
        self.response.done(complete)


class MirroredRequest(Protocol):
    """What the service reads of the user's request (``strangler.incoming.Request``
    and aiohttp's ``web.BaseRequest`` both have it)."""

    @property
    def method(self) -> str: ...
    @property
    def raw_path(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def headers(self) -> CIMultiDictProxy[str]: ...
    @property
    def body_exists(self) -> bool: ...
    @property
    def content_length(self) -> int | None: ...


def _always_selected() -> float:
    return 0.0  # a draw that always selects: for re-checking eligibility only


class _Work(NamedTuple):
    job: ShadowJob
    shadow: CompiledShadow
    results: RouteResults
    budget: ConfirmBudget


class ShadowService:
    """Per-route bounded lanes of shadow jobs, and their results. One per process,
    owned by the server.

    ``pool_for``: the pool of an upstream definition (``Forwarder.pool``).
    ``rand``: the percentage draw (tests pass a fixed one).
    """

    def __init__(
        self,
        pool_for: PoolFor,
        results: ShadowResults,
        *,
        rand: Callable[[], float] = random.random,
        tracing: Tracing | None = None,
    ) -> None:
        self.pool_for = pool_for
        self.tracing = tracing  # None: off; on, each job runs in a span linked to its request
        self.results = results
        self._rand = rand
        self._lanes: dict[str, ShadowRunner[_Work]] = {}
        self._retired: list[ShadowRunner[_Work]] = []
        self._budgets: dict[str, ConfirmBudget] = {}
        self._closed = False

    def configure(self, shadows: Iterable[CompiledShadow]) -> None:
        """Adopt the routes with shadow of a new snapshot: make or resize their lanes,
        retire the lanes of routes without shadow any more (their running jobs finish)."""
        wanted = {s.route: s for s in shadows}
        self.results.configure({name: s.spec.compare.noise for name, s in wanted.items()})
        for name, s in wanted.items():
            # What strangler diff lists as ignored by the config, next to learned noise.
            self.results.route(name).noise.configured = s.spec.compare.ignore
            self._budget(name, s.spec).share = s.spec.compare.confirm.max_share
            lane = self._lanes.get(name)
            if lane is None:
                self._lanes[name] = self._lane(name, s.spec)
            else:
                lane.resize(s.spec.concurrency, s.spec.queue)
        for name in [n for n in self._lanes if n not in wanted]:
            self._retired.append(self._lanes.pop(name))
            self._budgets.pop(name, None)
        self._retired = [lane for lane in self._retired if lane.running or lane.waiting]

    def _lane(self, name: str, spec: ShadowSpec) -> ShadowRunner[_Work]:
        return ShadowRunner(
            self._run,
            concurrency=spec.concurrency,
            queue=spec.queue,
            name=f"shadow-{name}",
            on_drop=_count_drop,
        )

    def _budget(self, name: str, spec: ShadowSpec) -> ConfirmBudget:
        budget = self._budgets.get(name)
        if budget is None:
            budget = self._budgets[name] = ConfirmBudget(spec.compare.confirm.max_share)
        return budget

    async def _run(self, work: _Work) -> None:
        def job() -> Awaitable[JobOutcome]:
            return run(work.job, self.pool_for, work.shadow.rules, work.results, work.budget)

        if self.tracing is None:
            await job()
        else:  # a background job, not the request path: one test per job is fine
            await self.tracing.shadow(work.job, job)

    def lane(self, route: str) -> ShadowRunner[_Work] | None:
        return self._lanes.get(route)

    def selects(self, shadow: CompiledShadow, request: MirroredRequest, primary: Upstream) -> bool:
        """Whether to mirror this request: ``should_shadow`` (loop guard, safe method
        or ``writes``, the percentage draw), and ``primary`` (the upstream answering
        it) is not the shadow upstream itself. Cheap; draws once per call."""
        return primary.name != shadow.upstream.name and should_shadow(
            shadow.spec, request.method, request.headers, self._rand
        )

    def begin(
        self,
        shadow: CompiledShadow,
        request: MirroredRequest,
        headers: CIMultiDict[str],
        primary: Upstream,
        *,
        body: bytes | None = None,
        translate: Plan | None = None,
        params: Mapping[str, str] | None = None,
        primary_translate: Plan | None = None,
    ) -> ShadowTap | None:
        """Build and submit the job for a request ``selects`` chose. Never awaits.

        ``headers``: the end-to-end request headers with the forwarded ones, as built
        for an upstream (Host and the marker are set per upstream when sending); the
        job keeps this object, so it must not change afterwards. ``body``: the request
        body when the proxy already holds it whole; otherwise a request with a body
        gets ``tap.request`` to feed. Returns the tap to feed, or ``None`` when the
        request is not mirrored after all (a body over ``max_body``, the route's lane
        full or draining: counted) or not eligible (the write-safety checks are made
        again here; only the draw is not). ``translate``: the route's plan when the
        shadow upstream is its translated side; ``primary_translate``: when the primary
        is (a confirming re-read is then translated as the user's request was)."""
        spec = shadow.spec
        if primary.name == shadow.upstream.name or not should_shadow(
            spec, request.method, request.headers, _always_selected
        ):
            return None
        results = self.results.route(shadow.route)
        tee: Capture | None = None
        if body is not None:
            if len(body) > spec.max_body:
                results.record_skip()  # too large to mirror
                return None
        elif request.body_exists:
            length = request.content_length
            if length is not None and length > spec.max_body:
                results.record_skip()
                return None
            tee = Capture(spec.max_body)
        tap = ShadowTap(tee, Capture(spec.max_body))
        job = ShadowJob(
            route=shadow.route,
            spec=spec,
            upstream=shadow.upstream,
            method=request.method,
            target=request.raw_path,
            headers=headers,
            client_host=request.host,
            body=tee if tee is not None else body,
            primary=tap.response,
            primary_upstream=primary,
            translate=translate,
            params=params if params is not None else EMPTY_MAP,
            primary_translate=primary_translate,
        )
        lane = self._lanes.get(shadow.route)
        if lane is None:
            if self._closed:  # drained: no new lanes either
                results.record_drop()
                return None
            # A snapshot newer than the last configure(): adopt its route.
            lane = self._lanes[shadow.route] = self._lane(shadow.route, spec)
        if not lane.submit(_Work(job, shadow, results, self._budget(shadow.route, spec))):
            return None
        if self.tracing is not None:  # the job's task runs only once this request awaits
            self.tracing.mirrored(headers)
        return tap

    async def join(self) -> None:
        """Wait until no shadow job runs or waits (new ones may still come)."""
        for lane in [*self._lanes.values(), *self._retired]:
            await lane.join()

    async def drain(self, deadline: float) -> int:
        """Refuse new jobs, give running and queued ones up to ``deadline`` seconds,
        then cancel the rest. Returns how many jobs were cut."""
        self._closed = True
        lanes = [*self._lanes.values(), *self._retired]
        cut = await asyncio.gather(*(lane.drain(deadline) for lane in lanes))
        return sum(cut)


def _count_drop(work: _Work) -> None:
    work.results.record_drop()
