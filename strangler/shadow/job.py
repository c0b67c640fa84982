"""One shadow job: mirror a request, capture both answers, compare, record.

``should_shadow`` is the per-request decision (cheap; call it only on routes with a
``shadow`` spec). ``ShadowJob`` is everything a job needs, copied off the request so
the request can finish without waiting for it. ``run`` is the job itself, run in the
background by a ``ShadowRunner``:

1. wait for the mirrored request body, if any (a body over ``max_body``, or one the
   client never finished, is not mirrored: the job is *skipped*);
2. send the request, with ``X-Strangler-Shadow: 1``, to the shadow upstream through
   its keep-alive pool, and capture its body up to ``max_body`` (its duration, from
   sending to the last byte, is the shadow latency);
3. wait for the primary's body (the capture the proxy fed while streaming it to the
   client); a primary that failed or was cut short leaves nothing to compare: skipped;
4. decode Content-Encoding (gzip, deflate, br) on both sides and ``compare`` under the
   route's rules and its learned noise;
5. *confirm* (Diffy's primary, secondary, candidate), for a safe method only (GET,
   HEAD, OPTIONS: a write is never sent twice): when the verdict is a mismatch and
   ``compare.confirm`` allows it (its budget, ``ConfirmBudget``), or always in noise
   mode, send the request once more to the primary's upstream, now that the shadow's
   answer is in (with the marker, translated like the user's request was when the
   primary is the route's translated side). The two primary answers are compared:
   in noise mode what differed is one observation for the route's ``NoiseLearner``.
   A mismatch whose every difference the second primary answer also shows against
   the first (the same status, header or JSON path, indices kept) is ``unstable``: a
   race with a write synced to the shadow side in between, or noise; it is counted
   apart from parity. What is left is a confirmed ``mismatch``; a mismatch that could
   not be confirmed (no budget, the re-read failed or ran out of time) counts as one;
6. record the outcome (and a redacted sample when it is a mismatch).

Failure contract: a shadow upstream that refuses, resets, times out (its own read
timeout, or the spec's ``timeout`` for the whole job) or answers garbage ends the job
as ``error`` (counted, sampled); nothing of it reaches the client or the primary
exchange. ``run`` never raises but for cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from multidict import CIMultiDict, istr

from strangler.config.model import EMPTY_MAP, Upstream
from strangler.config.shadow_model import SHADOW_MARKER, ShadowSpec
from strangler.errors import ForwardError
from strangler.forward.pool import UpstreamPool
from strangler.shadow.capture import Capture, Undecodable, decode
from strangler.shadow.compare import Observed, Rules, Verdict, compare
from strangler.shadow.samples import (
    RouteResults,
    Sample,
    Side,
    redact_differences,
    redact_headers,
    redact_target,
)
from strangler.translate import Plan, TranslateError, TranslateRequest, TranslateResponse

__all__ = [
    "CONFIRM_BURST",
    "SAFE_METHODS",
    "ConfirmBudget",
    "JobOutcome",
    "PoolFor",
    "ShadowJob",
    "run",
    "should_shadow",
]

log = logging.getLogger("strangler.shadow")

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods mirrored without ``writes: true``, and the only ones re-sent to the primary
(to confirm a mismatch, or in noise mode)."""
CONFIRM_BURST: Final = 10.0
"""Confirming re-reads a route may make at once before its budget has to refill."""

JobOutcome = Literal["match", "mismatch", "unstable", "error", "skipped"]
PoolFor = Callable[[Upstream], UpstreamPool]
"""Finds the pool of an upstream definition: the server passes ``Forwarder.pool``."""

_MARKER: Final = istr(SHADOW_MARKER)
_HOST: Final = istr("Host")
_CONTENT_LENGTH: Final = istr("Content-Length")
_CONTENT_ENCODING: Final = istr("Content-Encoding")


def should_shadow(
    spec: ShadowSpec,
    method: str,
    headers: Mapping[str, str],
    rand: Callable[[], float] = random.random,
) -> bool:
    """Whether to mirror this request: it does not carry the shadow marker (the loop
    guard), its method is safe (GET, HEAD, OPTIONS) or ``spec.writes`` allows any,
    and the percentage draw selects it (``rand()`` in [0, 1) below ``spec.ratio``).

    ``headers`` must be case-insensitive (aiohttp's request headers are).

    >>> spec = ShadowSpec(to="billing", ratio=0.5)
    >>> should_shadow(spec, "GET", {}, lambda: 0.49), should_shadow(spec, "GET", {}, lambda: 0.5)
    (True, False)
    >>> should_shadow(spec, "POST", {}, lambda: 0.0)
    False
    """
    if _MARKER in headers:
        return False
    if not spec.writes and method not in SAFE_METHODS:
        return False
    ratio = spec.ratio
    return ratio >= 1.0 or (ratio > 0.0 and rand() < ratio)


@dataclass(slots=True, eq=False, kw_only=True)
class ShadowJob:
    """One request to mirror. Built on the request path (``ShadowService.begin``), run
    later; it holds its own copies, never the aiohttp request.

    ``headers``: the end-to-end request headers as sent to the primary (a copy; Host
    and the marker are set per upstream when sending). ``client_host``: the client's
    Host, for upstreams that preserve it. ``body``: the request body when it is known
    up front, a ``Capture`` the proxy feeds while streaming it to the primary, or
    ``None``. ``primary``: the capture of the primary's answer (head and body).
    ``primary_upstream``: who answers the user; a confirming (or noise mode) re-read
    goes there. ``primary_translate``: the route's plan when the primary is its
    translated side (the user got a translated answer: the re-read is translated the
    same way before it is compared with it).
    """

    route: str
    spec: ShadowSpec
    upstream: Upstream
    method: str
    target: str  # the client's raw path and query string
    headers: CIMultiDict[str]
    client_host: str
    body: bytes | Capture | None
    primary: Capture
    primary_upstream: Upstream | None = None
    # When the route translates for the shadow upstream (its new side): the request is
    # translated before it is mirrored and the answer back before comparing, so the
    # legacy answer is compared with the translated new answer. ``params``: the route
    # template's parameters.
    translate: Plan | None = None
    params: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)
    primary_translate: Plan | None = None


class ConfirmBudget:
    """Bounds a route's confirming re-reads to ``share`` of its compared requests:
    each comparison earns ``share`` of a re-read (up to ``CONFIRM_BURST`` saved), a
    re-read spends one. One per route, kept by ``ShadowService`` across reloads.

    >>> b = ConfirmBudget(0.5, burst=1.0)
    >>> b.take(), b.take()
    (True, False)
    >>> b.earn(); b.earn(); b.take()
    True
    """

    __slots__ = ("burst", "share", "tokens")

    def __init__(self, share: float, *, burst: float = CONFIRM_BURST) -> None:
        self.share = share
        self.burst = burst
        self.tokens = burst

    def earn(self) -> None:
        self.tokens = min(self.burst, self.tokens + self.share)

    def take(self) -> bool:
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class _Answer:
    capture: Capture
    duration: float


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _send(
    job: ShadowJob,
    pool: UpstreamPool,
    body: bytes | None,
    outbound: TranslateRequest | None = None,
) -> _Answer:
    """One exchange with ``pool``'s upstream; its body captured up to ``max_body``.
    ``outbound``: the translated request to send instead. Raises ``ForwardError``."""
    method, target = job.method, job.target
    headers = job.headers.copy()
    if outbound is not None:
        method, target, headers = outbound.method, outbound.target, outbound.headers.copy()
        body = outbound.body if (outbound.body or body is not None) else None
    headers[_HOST] = job.client_host if pool.preserve_host else pool.host_header
    headers[_MARKER] = "1"
    if body is not None:
        headers[_CONTENT_LENGTH] = str(len(body))
    capture = Capture(job.spec.max_body)
    pool.inflight += 1  # a reload retires this pool only after the job is done with it
    started = time.perf_counter()
    try:
        resp = await pool.h1.send(
            method,
            pool.target(target),
            headers,
            None if body is None else _once(body),
            retry_stale=body is None,
        )
        capture.head(resp.status, resp.headers)
        try:
            async for chunk in resp.iter_body():
                capture.feed(chunk)
                if capture.truncated:
                    break  # no use reading on: release() closes the connection
            capture.done(not capture.truncated)
        finally:
            resp.release()
    finally:
        pool.done()
    return _Answer(capture, time.perf_counter() - started)


def _translated(plan: Plan, original: TranslateRequest, answer: Capture, limit: int) -> Capture:
    """The shadow's answer turned back into the legacy shape, as users would get it.
    A body over the limit is not translated (the comparison is then by status and
    headers only, as for any truncated answer)."""
    if answer.truncated:
        return answer
    msg = plan.apply_response(
        TranslateResponse(
            status=answer.status,
            reason=None,
            headers=CIMultiDict(answer.headers),
            request=original,
            body=answer.body or b"",
        )
    )
    out = Capture(limit)
    out.head(msg.status, msg.headers)
    out.feed(msg.body or b"")
    out.done(True)
    return out


def _observed(capture: Capture, limit: int) -> Observed:
    """The answer as compared: body decoded from its Content-Encoding (kept as is when
    it does not decode, so two identical undecodable bodies still match)."""
    body = capture.body
    encoding = capture.headers.get(_CONTENT_ENCODING)
    if body is not None and encoding:
        with contextlib.suppress(Undecodable):
            body = decode(body, encoding, limit)
    return Observed(capture.status, capture.headers, body)


def _side(capture: Capture, observed: Observed) -> Side:
    return Side.of(capture.status, capture.headers, observed.body, capture.seen)


def _sample(
    job: ShadowJob,
    outcome: Literal["mismatch", "error"],
    *,
    primary: tuple[Capture, Observed] | None = None,
    shadow: tuple[Capture, Observed] | None = None,
    verdict: Verdict | None = None,
    error: str = "",
    duration: float | None = None,
) -> Sample:
    return Sample(
        at=time.time(),
        outcome=outcome,
        method=job.method,
        target=redact_target(job.target),
        request_headers=redact_headers(job.headers.items()),
        primary=None if primary is None else _side(*primary),
        shadow=None if shadow is None else _side(*shadow),
        differences=() if verdict is None else redact_differences(verdict.differences),
        more=0 if verdict is None else verdict.more,
        truncated=False if verdict is None else verdict.truncated,
        error=error,
        duration=duration,
    )


async def run(
    job: ShadowJob,
    pool_for: PoolFor,
    rules: Rules,
    results: RouteResults,
    budget: ConfirmBudget | None = None,
) -> JobOutcome:
    """Run one shadow job (see the module docstring) and record its outcome in
    ``results``; returns the outcome. ``rules``: the route's compiled compare rules
    (learned noise is added from ``results``). ``budget``: the route's confirming
    re-reads (``None``: as many as ``compare.confirm`` asks for)."""
    stage = _Stage()
    try:
        async with asyncio.timeout(job.spec.timeout):
            return await _run(job, pool_for, rules, results, stage, budget)
    except TimeoutError:
        if stage.name == "confirm" and stage.pending is not None:
            # The primary is slow to answer again: the verdict stands unconfirmed.
            return _record(job, results, *stage.pending)
        if stage.name == "primary":
            # The user's answer is still streaming: not the shadow's fault, and
            # nothing fair to compare.
            results.record_skip()
            return "skipped"
        message = f"shadow job timed out after {job.spec.timeout:g}s ({stage.name})"
        results.record_error(None, _sample(job, "error", error=message))
        return "error"


class _Stage:
    """Where a job is, so a job timeout is blamed on the right side."""

    __slots__ = ("name", "pending")

    def __init__(self) -> None:
        self.name = "request body"
        # While confirming: what to record if the re-read runs out of time.
        self.pending: tuple[Verdict, _Answer, Capture, Observed, Capture, Observed] | None = None

    def __call__(self, name: str) -> None:
        self.name = name


async def _run(
    job: ShadowJob,
    pool_for: PoolFor,
    rules: Rules,
    results: RouteResults,
    stage: _Stage,
    budget: ConfirmBudget | None,
) -> JobOutcome:
    spec = job.spec
    body: bytes | None = None
    if isinstance(job.body, Capture):
        stage("request body")
        if not await job.body.wait() or job.body.truncated:
            results.record_skip()  # unfinished, or too large to mirror
            return "skipped"
        body = job.body.body
    else:
        body = job.body

    stage("shadow")
    try:
        answer, shadow = await _exchange(job, pool_for(job.upstream), body, job.translate)
    except ForwardError as e:
        results.record_error(None, _sample(job, "error", error=str(e)))
        return "error"
    except TranslateError as e:
        results.record_error(None, _sample(job, "error", error=f"translating: {e}"))
        return "error"

    stage("primary")
    primary = job.primary
    if not await primary.wait() or primary.status == 0:
        results.record_skip()  # the user's answer failed or was cut: nothing to compare
        return "skipped"

    stage("compare")
    limit = spec.max_body
    p_obs, s_obs = _observed(primary, limit), _observed(shadow, limit)
    verdict = compare(p_obs, s_obs, results.rules(rules))
    noise = spec.compare.noise.enabled
    confirm = spec.compare.confirm.enabled and not verdict.match
    if budget is not None:
        budget.earn()
    if (
        (noise or confirm)
        and job.primary_upstream is not None
        and job.method in SAFE_METHODS
        and (noise or budget is None or budget.take())
    ):
        stage("confirm")
        stage.pending = (verdict, answer, primary, p_obs, shadow, s_obs)
        try:
            _, again = await _exchange(
                job, pool_for(job.primary_upstream), body, job.primary_translate
            )
        except (ForwardError, TranslateError) as e:
            log.debug("%s: re-reading the primary failed: %s", job.route, e)
        else:
            # Against the route's own rules, not its learned noise: a noisy path must
            # go on being observed, or it would be forgotten while still noisy.
            pair = compare(p_obs, _observed(again, limit), rules)
            if noise:
                results.noise.observe(pair.paths)
            if not verdict.match:
                # What the second primary answer repeats is a race or noise; what is
                # left (if anything) is the mismatch, and all its sample shows.
                verdict = _unexplained(verdict, pair, p_obs, s_obs, results.rules(rules))
                if verdict.match:
                    results.record_unstable(answer.duration)
                    return "unstable"
    return _record(job, results, verdict, answer, primary, p_obs, shadow, s_obs)


async def _exchange(
    job: ShadowJob, pool: UpstreamPool, body: bytes | None, plan: Plan | None
) -> tuple[_Answer, Capture]:
    """Send the job's request to ``pool``'s upstream, translated by ``plan`` (if any)
    both ways. Returns the exchange and its answer as compared. Raises
    ``ForwardError`` and ``TranslateError``."""
    if plan is None:
        answer = await _send(job, pool, body)
        return answer, answer.capture
    original = TranslateRequest.from_target(
        job.method, job.target, job.headers.copy(), job.params, body or b""
    )
    outbound = plan.apply_request(original.copy())
    answer = await _send(job, pool, body, outbound)
    return answer, _translated(plan, original, answer.capture, job.spec.max_body)


def _unexplained(
    verdict: Verdict, pair: Verdict, p: Observed, s: Observed, active: Rules
) -> Verdict:
    """``verdict`` (the primary against the shadow) without the differences that
    ``pair`` (the primary against its own second answer) shows too: the same status,
    header, or JSON path with its indices (or any body difference, when the primary's
    own bodies differed as bytes). A match: every difference is explained."""
    if pair.match:
        return verdict
    out = verdict
    if "body" in verdict.kinds and "body" in pair.kinds and pair.body == "json":
        out = compare(p, s, active.with_ignored(pair.paths))
    flipped = frozenset(d.where.lower() for d in pair.differences if d.kind == "header")
    whole_body = pair.body == "bytes" and "body" in pair.kinds
    kept = tuple(
        d
        for d in out.differences
        if not (
            (d.kind == "status" and "status" in pair.kinds)
            or (d.kind == "header" and d.where.lower() in flipped)
            or (d.kind == "body" and whole_body)
        )
    )
    if kept == out.differences:
        return out
    kinds = frozenset(d.kind for d in kept) | (out.kinds & {"body"} if not whole_body else set())
    if whole_body:
        return dataclasses.replace(
            out, differences=kept, more=0, kinds=kinds, patterns=frozenset(), paths=frozenset()
        )
    return dataclasses.replace(out, differences=kept, kinds=kinds)


def _record(
    job: ShadowJob,
    results: RouteResults,
    verdict: Verdict,
    answer: _Answer,
    primary: Capture,
    p_obs: Observed,
    shadow: Capture,
    s_obs: Observed,
) -> JobOutcome:
    if verdict.match:
        results.record_verdict(verdict, answer.duration)
        return "match"
    sample = _sample(
        job,
        "mismatch",
        primary=(primary, p_obs),
        shadow=(shadow, s_obs),
        verdict=verdict,
        duration=answer.duration,
    )
    results.record_verdict(verdict, answer.duration, sample)
    return "mismatch"
