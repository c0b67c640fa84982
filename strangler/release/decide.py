"""Which upstream answers one request: release precedence in one pure function.

``compile_release(route, upstreams)`` turns a route's release config into a frozen
``ReleasePlan`` once per snapshot; ``decide(plan, request, state, rand)`` then picks
the upstream for each request, by this precedence (first row that applies wins):

====  ================================================  ==============  ============
row   when                                              upstream        reason
====  ================================================  ==============  ============
1     the route's kill switch is on                     primary         ``killed``
2     the route's SLO guard has tripped                 primary         ``guard``
3     the override header (else cookie) names an        that upstream   ``override``
      allowed upstream, and the client is in
      ``overrides.networks`` (when given)
3b    the override header names no allowed upstream,    primary         ``rejected``
      or the cookie names no upstream of the config,
      and the client is in ``overrides.networks``
      (when not given: a loopback or private
      address); the pipeline answers 400 instead
4     the canary takes the request (sticky bucket, or   ``canary.to``   ``canary``
      a coin toss when there is no sticky key)
5     otherwise                                         ``to``          ``primary``
====  ================================================  ==============  ============

"primary" (the side release controls step back to) is defined in
``strangler.config.model``: ``fallback.to``, else ``to`` with a canary, else
legacy. Reason ``primary`` (row 5) means "the route's own ``to``"; for a canary
route the two are the same upstream. ``Decision.cohort`` is the request's sticky
bucket (0..9999) when one was computed (rows 4-5 of a sticky canary), else ``None``.

Guarantees: ``decide`` does no I/O, reads no clock, and takes its randomness from
``rand`` (``random.random`` in the server; a fixed value in tests). A route without
canary and overrides costs two attribute checks and returns a prebuilt ``Decision``;
every ``Decision`` except a sticky canary's is prebuilt, so most requests allocate
nothing. A request's sticky key is its header, cookie or query value, or its peer
address (``remote``); a request without it is placed by a coin toss, every time.
An override value must be exactly an allowed upstream's name (surrounding spaces
aside). A mistaken one from a client allowed to override is ``rejected`` (row 3b):
a header naming anything else (``user`` for ``users``, or an upstream this route does
not allow), or a cookie naming no upstream of the config at all. A cookie naming an
upstream this route does not allow is ignored (row 4 on): a cookie is sent to every
route of the site, and may be meant for another one. From a client outside
``overrides.networks`` every override value is ignored. Without ``networks`` (every
client may override) only a loopback or private-network client is told about its
mistake, since the 400 lists the route's upstreams: from a public address the value
is ignored, as before. The override header or cookie is not
removed here: strip it before forwarding if upstreams must not see it.

Fallback (after ``decide``): when the new side fails, ``plan.fallback`` says
whether this request may be sent again to the primary (``FallbackPolicy``).

>>> from types import SimpleNamespace
>>> from strangler.config.model import Canary, MatchSpec, Route
>>> route = Route(name="r", owner="t", match=MatchSpec(), to="legacy", index=0,
...               canary=Canary(to="billing", ratio=0.25))
>>> plan = compile_release(route, {"legacy", "billing"})
>>> req = SimpleNamespace(headers={}, cookies={}, query={}, remote=None)
>>> decide(plan, req, RouteState(), rand=lambda: 0.1)
Decision(upstream='billing', reason='canary', cohort=None)
>>> decide(plan, req, RouteState(killed=True), rand=lambda: 0.1)
Decision(upstream='legacy', reason='killed', cohort=None)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, Protocol, final

from strangler.config.model import LEGACY, FallbackOn, Route, Slo, Sticky
from strangler.release.state import RouteState
from strangler.release.sticky import BUCKETS, Cohorts, cutoff
from strangler.router import RequestLike

__all__ = [
    "FAILURE_5XX",
    "PRIVATE_NETWORKS",
    "REASONS",
    "CanaryPlan",
    "Decision",
    "FallbackPolicy",
    "OverridePlan",
    "Reason",
    "ReleasePlan",
    "ReleaseRequest",
    "compile_release",
    "decide",
    "fixed_plan",
]

Reason = Literal["primary", "canary", "override", "killed", "guard", "fallback", "rejected"]
REASONS: Final[tuple[Reason, ...]] = (
    "primary",
    "canary",
    "override",
    "killed",
    "guard",
    "fallback",
    "rejected",
)
"""Every ``Decision.reason``: a bounded metrics label. ``decide`` returns all but
``fallback``, which is ``FallbackPolicy.decision``, the retry on the primary.
``rejected``: a mistaken override, which the pipeline answers 400."""

PRIVATE_NETWORKS: Final = (
    "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
)  # fmt: skip
"""Loopback and private networks (RFC 1918, RFC 4193): the clients told about a
mistaken override when the route's ``overrides.networks`` is not given."""

FAILURE_5XX: Final = "5xx"
"""The failure name of a 5xx answer (the others are ``ForwardErrorKind`` values)."""


class ReleaseRequest(RequestLike, Protocol):
    """What ``decide`` reads of a request: the router's ``RequestLike`` plus the peer
    address. aiohttp's ``web.BaseRequest`` satisfies it."""

    @property
    def remote(self) -> str | None:
        """The client's address (``client_ip`` stickiness, override networks)."""
        ...


@final
@dataclass(frozen=True, slots=True)
class Decision:
    """Where one request goes and why. Immutable and shared: never mutate one."""

    upstream: str
    reason: Reason
    cohort: int | None = None


# ---------------------------------------------------------------------------- plans


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CanaryPlan:
    """A canary, precomputed: the share as a bucket count, the key reader, the salt."""

    to: str
    ratio: float
    cutoff: int  # buckets in the canary: sticky.cutoff(ratio)
    sticky: Sticky | None
    key: Callable[[ReleaseRequest], str | None] | None  # None: always a coin toss
    cohorts: Cohorts  # salted with the group, else the route name
    group: str | None
    hit: Decision  # Decision(to, "canary"): a coin toss that took the request


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class OverridePlan:
    """Overrides, precomputed: header and cookie names, one Decision per allowed name.

    ``known``: every upstream of the config (a cookie naming one of them that this
    route does not allow is ignored, not rejected). ``rejected``: the decision of a
    mistaken override (row 3b), for clients in ``tell`` (``networks``, else
    ``PRIVATE_NETWORKS``).
    """

    header: str | None
    cookie: str | None
    decisions: Mapping[str, Decision]
    networks: _Networks | None  # None: every client may override
    known: frozenset[str] = frozenset()
    rejected: Decision = Decision(LEGACY, "rejected")
    tell: _Networks | None = None  # None: reject for nobody (a plan built by hand)

    def pick(self, req: ReleaseRequest) -> Decision | None:
        """The forced decision (``rejected`` for a mistaken value), or ``None`` when
        the request forces nothing."""
        value = None
        header = False
        if self.header is not None:
            value = req.headers.get(self.header)
            header = value is not None
        if value is None and self.cookie is not None:
            value = req.cookies.get(self.cookie)
        if value is None:
            return None
        decision = self.decisions.get(value.strip())
        if decision is None:
            if not header and value.strip() in self.known:
                return None  # a cookie meant for another route
            tell = self.tell
            return self.rejected if tell is not None and req.remote in tell else None
        if self.networks is not None and req.remote not in self.networks:
            return None
        return decision

    def rejection(self, req: ReleaseRequest) -> str:
        """Why ``pick`` rejected ``req``'s override: one line for the client."""
        if self.header is not None and (value := req.headers.get(self.header)) is not None:
            where = f"header {self.header}"
        else:
            value = req.cookies.get(self.cookie or "", "")
            where = f"cookie {self.cookie}"
        allowed = ", ".join(sorted(self.decisions))
        shown = value.strip()[:64]  # bounded: it is the client's text
        return f"{where}: {shown!r} is not an upstream this route allows ({allowed})"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class FallbackPolicy:
    """When a request that went to the new side may be sent again to the primary.

    ``applies(decision, method)`` before forwarding: the request went to the new
    side (by its ``to`` or by the canary: never a forced override, whose sender
    wants to see the failure) with a listed method. The pipeline then keeps up to
    ``buffer_bytes`` of the body (a longer body cannot be replayed; with
    ``buffer_bytes == 0`` only a request without a body can). ``triggers(failure)``
    after the new side failed, before anything reached the client: ``failure`` is a
    ``ForwardErrorKind`` value (``refused``, ``reset``, ``timeout``, ``protocol``) or
    ``FAILURE_5XX`` for a 5xx answer. Then send ``decision`` (the primary, reason
    ``fallback``).
    """

    new: str
    to: str
    methods: frozenset[str]
    on: frozenset[FallbackOn]
    buffer_bytes: int
    decision: Decision

    def applies(self, decision: Decision, method: str) -> bool:
        return (
            decision.upstream == self.new
            and decision.reason in _FALLBACK_REASONS
            and method in self.methods
        )

    def triggers(self, failure: str) -> bool:
        return failure in self.on


_FALLBACK_REASONS: Final = frozenset({"primary", "canary"})


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ReleasePlan:
    """One route's release controls, compiled. Attach it to the compiled route.

    ``to``, ``primary`` and ``new`` are the route's sides (``new`` is ``None`` when
    nothing is being released). ``observed``: the upstream whose answers feed the
    route's SLO guard (the new side, when the route has an ``slo``), else ``None``.
    ``upstreams``: every upstream ``decide`` or the fallback may send to (bind
    metrics and pools for each). ``default``, ``killed``, ``guarded``: the prebuilt
    decisions of rows 5, 1 and 2.
    """

    route: str
    to: str
    primary: str
    new: str | None
    canary: CanaryPlan | None
    overrides: OverridePlan | None
    fallback: FallbackPolicy | None
    slo: Slo | None
    observed: str | None
    upstreams: frozenset[str]
    default: Decision
    killed: Decision
    guarded: Decision
    simple: bool = field(init=False)  # no canary and no overrides: rows 1, 2, 5 only

    def __post_init__(self) -> None:
        object.__setattr__(self, "simple", self.canary is None and self.overrides is None)


def decide(
    plan: ReleasePlan,
    req: ReleaseRequest,
    state: RouteState,
    rand: Callable[[], float],
) -> Decision:
    """The upstream for ``req`` on ``plan``'s route, by the precedence table above.

    ``state`` is the route's runtime state; ``rand`` returns a float in [0, 1) and
    is called at most once (only for a canary request without a sticky key).
    """
    if state.killed:
        return plan.killed
    if state.guard_tripped:
        return plan.guarded
    if plan.simple:
        return plan.default
    overrides = plan.overrides
    if overrides is not None:
        forced = overrides.pick(req)
        if forced is not None:
            return forced
    canary = plan.canary
    if canary is None:
        return plan.default
    ratio = state.percent_override
    share = canary.cutoff if ratio is None else cutoff(ratio)
    if share <= 0:
        return plan.default
    if share >= BUCKETS:
        return canary.hit
    if canary.key is not None:
        key = canary.key(req)
        if key:
            cohort = canary.cohorts(key)
            if cohort < share:
                return Decision(canary.to, "canary", cohort)
            return Decision(plan.to, "primary", cohort)
    # No sticky key: a coin toss on the same 0.01% grid as the buckets.
    return canary.hit if rand() * BUCKETS < share else plan.default


# ---------------------------------------------------------------------------- compile


def compile_release(route: Route, upstreams: Collection[str]) -> ReleasePlan:
    """``route``'s ``ReleasePlan``. ``upstreams``: the config's upstream names.

    Raises ``ValueError`` when the route names an upstream not in ``upstreams``
    (a validated config never does) or an override network that does not parse.
    """
    primary, new = route.primary, route.new_side
    named = {route.to, primary}
    canary = None
    if route.canary is not None:
        c = route.canary
        named.add(c.to)
        canary = CanaryPlan(
            to=c.to,
            ratio=c.ratio,
            cutoff=cutoff(c.ratio),
            sticky=c.sticky,
            key=None if c.sticky is None else _key_reader(c.sticky),
            cohorts=Cohorts(c.group or route.name),
            group=c.group,
            hit=Decision(c.to, "canary"),
        )
    overrides = None
    if route.overrides is not None:
        o = route.overrides
        allow = o.allow or tuple(dict.fromkeys((route.to, *((new,) if new else ()), primary)))
        named.update(allow)
        overrides = OverridePlan(
            header=o.header,
            cookie=o.cookie,
            decisions=MappingProxyType({name: Decision(name, "override") for name in allow}),
            networks=_Networks(o.networks) if o.networks else None,
            known=frozenset(upstreams),
            rejected=Decision(primary, "rejected"),
            tell=_Networks(o.networks or PRIVATE_NETWORKS),
        )
    fallback = None
    f = route.fallback
    if f.enabled and new is not None and new != primary:
        fallback = FallbackPolicy(
            new=new,
            to=primary,
            methods=f.methods,
            on=f.on,
            buffer_bytes=f.buffer_bytes,
            decision=Decision(primary, "fallback"),
        )
    unknown = sorted(named - set(upstreams))
    if unknown:
        raise ValueError(f"route {route.name!r} names unknown upstreams: {', '.join(unknown)}")
    return ReleasePlan(
        route=route.name,
        to=route.to,
        primary=primary,
        new=new,
        canary=canary,
        overrides=overrides,
        fallback=fallback,
        slo=route.slo,
        observed=new if route.slo is not None else None,
        upstreams=frozenset(named),
        default=Decision(route.to, "primary"),
        killed=Decision(primary, "killed"),
        guarded=Decision(primary, "guard"),
    )


def fixed_plan(route: str, upstream: str = LEGACY) -> ReleasePlan:
    """The plan of a route without release controls that sends to ``upstream``:
    the built-in route for unmatched traffic (``route="(unrouted)"``)."""
    return ReleasePlan(
        route=route,
        to=upstream,
        primary=upstream,
        new=None,
        canary=None,
        overrides=None,
        fallback=None,
        slo=None,
        observed=None,
        upstreams=frozenset({upstream}),
        default=Decision(upstream, "primary"),
        killed=Decision(upstream, "killed"),
        guarded=Decision(upstream, "guard"),
    )


def _key_reader(sticky: Sticky) -> Callable[[ReleaseRequest], str | None]:
    """A function reading ``sticky``'s key from a request (``None``: the key is absent)."""
    name = sticky.name or ""
    if sticky.kind == "header":
        return lambda req: req.headers.get(name)
    if sticky.kind == "cookie":
        return lambda req: req.cookies.get(name)
    if sticky.kind == "query":
        return lambda req: req.query.get(name)
    return lambda req: req.remote


@final
class _Networks:
    """Client networks allowed to override; membership of an address string, cached."""

    __slots__ = ("_cache", "_nets")

    _CACHE_MAX: Final = 4096

    def __init__(self, cidrs: Collection[str]) -> None:
        self._nets = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        self._cache: dict[str, bool] = {}

    def __contains__(self, ip: object) -> bool:
        if not isinstance(ip, str):
            return False
        hit = self._cache.get(ip)
        if hit is None:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                return False
            if addr.version == 6 and addr.ipv4_mapped is not None:
                addr = addr.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
            hit = any(addr in net for net in self._nets)
            if len(self._cache) < self._CACHE_MAX:  # bounded: never trust client counts
                self._cache[ip] = hit
        return hit

    def __repr__(self) -> str:
        return f"_Networks({[str(n) for n in self._nets]})"
