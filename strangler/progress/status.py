"""The migration status model, computed at read time from a ``ProgressState`` and the
current snapshot (never on the request path).

Decommission readiness (``is_candidate``): a route is a deletion candidate when legacy
last answered it more than ``idle_after`` ago; or, when legacy has never answered it,
when legacy could answer it (its primary is legacy, or a canary involves legacy) and
it has been tracked for more than ``idle_after``. So a route migrated three weeks ago
is a candidate (the legacy code behind it is dead), a route born on a new service with
no legacy history never is, and a brand-new proxy calls nothing a candidate until it
has watched for ``idle_after``. A learned legacy endpoint is a candidate when it was
last seen more than ``idle_after`` ago.

A learned endpoint that a route of the current config now claims is no longer
remaining legacy surface: ``attribute`` drops it from the backlog and carries its
last-seen time over to the route (as ``last_legacy``), so moving ``GET
/invoices/{id}`` to a route keeps the date legacy last answered it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final, Literal, TypedDict, final

from strangler.config.model import EMPTY_MAP, Route
from strangler.progress.fold import probe_path
from strangler.progress.state import ProgressState, RouteCounts
from strangler.runtime import TARGET_LEGACY, TARGET_NEW, CompiledRoute, Snapshot

__all__ = [
    "BACKLOG_IN_STATUS",
    "BacklogJSON",
    "CandidateJSON",
    "DecommissionJSON",
    "EndpointJSON",
    "RouteJSON",
    "StatusJSON",
    "attribute",
    "backlog_model",
    "canary_percent",
    "claimed_by",
    "decommission_model",
    "is_candidate",
    "iso",
    "route_rows",
    "status_model",
]

DAY: Final = 86400.0
BACKLOG_IN_STATUS: Final = 50

RouteStateName = Literal["legacy", "canary", "migrated"]


class OverallJSON(TypedDict):
    requests: int
    new: int
    legacy: int
    migrated_ratio: float  # requests answered by new services / all requests
    routes_total: int
    routes_migrated: int


class RouteJSON(TypedDict):
    name: str
    owner: str
    primary: str  # the primary upstream's name
    target: str  # "legacy" or "new"
    state: RouteStateName
    canary_percent: float
    requests: int
    new: int
    legacy: int
    new_share: float
    errors: int
    error_ratio: float
    last_legacy_at: str | None
    tracking_since: str | None
    decommission_candidate: bool


class EndpointJSON(TypedDict):
    endpoint: str  # "GET /users/{id}"
    requests: int  # Space-Saving estimate: at most ``overcount`` too high
    overcount: int
    share: float  # of all requests
    last_seen: str


class CandidateJSON(TypedDict):
    kind: Literal["route", "endpoint"]
    name: str
    last_legacy_at: str | None
    idle_days: float


class StatusJSON(TypedDict):
    version: str
    generated_at: str
    idle_after_days: float
    overall: OverallJSON
    routes: list[RouteJSON]
    backlog: list[EndpointJSON]
    backlog_total: int  # endpoints tracked, of which ``backlog`` is the top
    decommission: list[CandidateJSON]


class BacklogJSON(TypedDict):
    version: str
    generated_at: str
    requests: int  # all requests, the denominator of ``share``
    total: int  # endpoints tracked
    floor: int  # an endpoint not listed was seen at most this often
    endpoints: list[EndpointJSON]


class DecommissionJSON(TypedDict):
    version: str
    generated_at: str
    idle_after_days: float
    decommission: list[CandidateJSON]


def iso(t: float) -> str:
    """``1706659200.0`` → ``'2024-01-31T00:00:00Z'``."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _iso_or_none(t: float) -> str | None:
    return iso(t) if t else None


def canary_percent(route: Route) -> float:
    """The configured percentage of ``route``'s traffic its canary sends to the new
    side (0.0 without a canary). A route with a canary share strictly between 0 and
    100 is reported in state ``canary``. Runtime overrides and rollbacks are shown by
    the release API (``/api/routes``), which knows the runtime state."""
    return route.canary.ratio * 100.0 if route.canary is not None else 0.0


def _state(target: str, canary: float) -> RouteStateName:
    if 0.0 < canary < 100.0:
        return "canary"
    return "migrated" if target == TARGET_NEW else "legacy"


def is_candidate(
    counts: RouteCounts | None, legacy_involved: bool, now: float, idle_after: float
) -> tuple[bool, float | None]:
    """``(candidate, idle seconds)`` for one route (see the module docstring)."""
    if counts is None:
        return False, None
    if counts.last_legacy:
        idle = now - counts.last_legacy
        return idle > idle_after, idle
    if legacy_involved and counts.since:
        idle = now - counts.since
        return idle > idle_after, idle
    return False, None


@final
class _Probe:
    """The little of a request ``Router.match`` reads, for a learned endpoint."""

    __slots__ = ("method", "path")
    host: Final = ""
    headers: Final[Mapping[str, str]] = EMPTY_MAP
    query: Final[Mapping[str, str]] = EMPTY_MAP
    cookies: Final[Mapping[str, str]] = EMPTY_MAP

    def __init__(self, method: str, path: str) -> None:
        self.method = method
        self.path = path


def claimed_by(snap: Snapshot, endpoint: str) -> CompiledRoute | None:
    """The route of ``snap`` that a learned endpoint's requests would now match.

    A route that needs a host, header, query or cookie condition is not matched by
    the probe (it carries none), so such an endpoint stays in the backlog.
    """
    method, _, template = endpoint.partition(" ")
    route, _params = snap.router.match(_Probe(method, probe_path(template)))
    return None if route is snap.unrouted else route


def attribute(state: ProgressState, snap: Snapshot) -> None:
    """Move endpoints that a route of ``snap`` now claims out of ``state.endpoints``,
    carrying their last-seen time over to the route's ``last_legacy``. In place."""
    for key in list(state.endpoints):
        route = claimed_by(snap, key)
        if route is None:
            continue
        e = state.endpoints.pop(key)
        r = state.routes.get(route.name)
        if r is None:
            r = state.routes[route.name] = RouteCounts()
        r.last_legacy = max(r.last_legacy, e.last_seen)


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def route_rows(
    routes: Mapping[str, RouteCounts], snap: Snapshot, now: float, idle_after: float
) -> list[RouteJSON]:
    """One row per route of the config, in config order."""
    rows: list[RouteJSON] = []
    for spec, compiled in zip(snap.config.routes, snap.routes, strict=True):
        counts = routes.get(compiled.name)
        canary = canary_percent(spec)
        legacy_involved = compiled.target == TARGET_LEGACY or canary > 0.0
        candidate, _idle = is_candidate(counts, legacy_involved, now, idle_after)
        c = counts or RouteCounts()
        requests = c.legacy + c.new
        rows.append(
            {
                "name": compiled.name,
                "owner": spec.owner,
                "primary": compiled.upstream.name,
                "target": compiled.target,
                "state": _state(compiled.target, canary),
                "canary_percent": canary,
                "requests": requests,
                "new": c.new,
                "legacy": c.legacy,
                "new_share": _ratio(c.new, requests),
                "errors": c.errors,
                "error_ratio": _ratio(c.errors, requests),
                "last_legacy_at": _iso_or_none(c.last_legacy),
                "tracking_since": _iso_or_none(c.since),
                "decommission_candidate": candidate,
            }
        )
    return rows


def _totals(state: ProgressState) -> tuple[int, int]:
    """(new, legacy) over every route ever tracked, unrouted and removed ones too."""
    new = sum(r.new for r in state.routes.values())
    legacy = sum(r.legacy for r in state.routes.values())
    return new, legacy


def _endpoints(state: ProgressState, total: int, limit: int | None) -> list[EndpointJSON]:
    ranked = sorted(state.endpoints.items(), key=lambda kv: (-kv[1].count, kv[0]))
    if limit is not None:
        ranked = ranked[:limit]
    return [
        {
            "endpoint": key,
            "requests": e.count,
            "overcount": e.overcount,
            "share": _ratio(e.count, total),
            "last_seen": iso(e.last_seen),
        }
        for key, e in ranked
    ]


def _candidates(
    state: ProgressState, snap: Snapshot, now: float, idle_after: float
) -> list[CandidateJSON]:
    out: list[CandidateJSON] = []
    for spec, compiled in zip(snap.config.routes, snap.routes, strict=True):
        counts = state.routes.get(compiled.name)
        legacy_involved = compiled.target == TARGET_LEGACY or canary_percent(spec) > 0.0
        candidate, idle = is_candidate(counts, legacy_involved, now, idle_after)
        if candidate and counts is not None and idle is not None:
            out.append(
                {
                    "kind": "route",
                    "name": compiled.name,
                    "last_legacy_at": _iso_or_none(counts.last_legacy),
                    "idle_days": round(idle / DAY, 2),
                }
            )
    idle_endpoints = sorted(
        (e.last_seen, key) for key, e in state.endpoints.items() if now - e.last_seen > idle_after
    )
    for last_seen, key in idle_endpoints:
        out.append(
            {
                "kind": "endpoint",
                "name": key,
                "last_legacy_at": iso(last_seen),
                "idle_days": round((now - last_seen) / DAY, 2),
            }
        )
    return out


def status_model(
    state: ProgressState,
    snap: Snapshot,
    now: float,
    *,
    idle_after: float,
    backlog_limit: int = BACKLOG_IN_STATUS,
) -> StatusJSON:
    """The whole status. ``state`` must already be ``attribute``d against ``snap``."""
    new, legacy = _totals(state)
    total = new + legacy
    rows = route_rows(state.routes, snap, now, idle_after)
    return {
        "version": snap.version,
        "generated_at": iso(now),
        "idle_after_days": round(idle_after / DAY, 4),
        "overall": {
            "requests": total,
            "new": new,
            "legacy": legacy,
            "migrated_ratio": _ratio(new, total),
            "routes_total": len(rows),
            "routes_migrated": sum(1 for r in rows if r["state"] == "migrated"),
        },
        "routes": rows,
        "backlog": _endpoints(state, total, backlog_limit),
        "backlog_total": len(state.endpoints),
        "decommission": _candidates(state, snap, now, idle_after),
    }


def backlog_model(
    state: ProgressState, snap: Snapshot, now: float, *, limit: int | None = None
) -> BacklogJSON:
    """The remaining legacy surface, ranked by requests (all of it without ``limit``)."""
    new, legacy = _totals(state)
    total = new + legacy
    return {
        "version": snap.version,
        "generated_at": iso(now),
        "requests": total,
        "total": len(state.endpoints),
        "floor": state.floor,
        "endpoints": _endpoints(state, total, limit),
    }


def decommission_model(
    state: ProgressState, snap: Snapshot, now: float, *, idle_after: float
) -> DecommissionJSON:
    """Routes (config order), then endpoints (longest idle first) ready for deletion."""
    return {
        "version": snap.version,
        "generated_at": iso(now),
        "idle_after_days": round(idle_after / DAY, 4),
        "decommission": _candidates(state, snap, now, idle_after),
    }
