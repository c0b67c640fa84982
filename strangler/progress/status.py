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
from typing import Final, Literal, NotRequired, TypedDict, final

from strangler.config.model import EMPTY_MAP, Route
from strangler.progress.fold import ignore_pattern, probe_path
from strangler.progress.state import NOT_FOUND, ProgressState, RouteCounts
from strangler.progress.windows import WINDOWS, Series
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


class WindowJSON(TypedDict):
    requests: int
    new: int
    legacy: int
    new_share: float  # new / requests (0.0 without requests)


class CoverageJSON(TypedDict):
    endpoints_seen: int  # learned endpoints that are legacy surface, moved or not
    endpoints_moved: int  # of those, claimed by a route whose primary is a new service
    ratio: float


class OverallJSON(TypedDict):
    requests: int
    new: int
    legacy: int
    migrated_ratio: float  # requests answered by new services / all requests
    routes_total: int
    routes_migrated: int
    windows: dict[str, WindowJSON]  # "5m", "1h", "24h", "all" (see ``windows``)
    coverage: CoverageJSON


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
    windows: dict[str, WindowJSON]
    reset_at: str | None


class EndpointJSON(TypedDict):
    endpoint: str  # "GET /users/{id}"
    requests: int  # Space-Saving estimate: at most ``overcount`` too high
    overcount: int
    share: float  # of all requests
    last_seen: str
    status_classes: list[str]  # "2xx", ..., "404/405" (what it answered)


class CandidateJSON(TypedDict):
    kind: Literal["route", "endpoint"]
    name: str
    last_legacy_at: str | None
    idle_days: float
    evidence: NotRequired[str]  # why it is a candidate beyond idleness (the autopilot's word)


def with_evidence(
    candidates: list[CandidateJSON], evidence: Mapping[str, str], state: ProgressState, now: float
) -> list[CandidateJSON]:
    """``candidates`` with each route of ``evidence`` marked (added when not there yet):
    a route whose migration the autopilot finished is a candidate on that evidence,
    however recently legacy last answered it."""
    out = list(candidates)
    listed = {c["name"]: c for c in out if c["kind"] == "route"}
    for route, why in evidence.items():
        if route in listed:
            listed[route]["evidence"] = why
            continue
        counts = state.routes.get(route)
        last = counts.last_legacy if counts is not None else 0.0
        idle = (now - last) / DAY if last else 0.0
        out.insert(
            sum(1 for c in out if c["kind"] == "route"),
            {
                "kind": "route",
                "name": route,
                "last_legacy_at": _iso_or_none(last),
                "idle_days": round(max(0.0, idle), 2),
                "evidence": why,
            },
        )
    return out


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
    total: int  # legacy surface endpoints tracked
    not_found_total: int  # tracked endpoints that only ever answered 404/405
    floor: int  # an endpoint not listed was seen at most this often
    endpoints: list[EndpointJSON]  # surface only, unless asked for all


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
    """Move endpoints that a route of ``snap`` now claims out of ``state.endpoints``
    (into ``claimed``), carrying their last-seen time over to the route's
    ``last_legacy``; drop those ``progress.ignore`` matches. In place."""
    ignore = ignore_pattern(snap.config.progress.ignore)
    for key in list(state.endpoints):
        if ignore is not None and ignore.fullmatch(key.partition(" ")[2]):
            del state.endpoints[key]
            continue
        route = claimed_by(snap, key)
        if route is None:
            continue
        state.claimed.add(key)
        e = state.endpoints.pop(key)
        r = state.routes.get(route.name)
        if r is None:
            r = state.routes[route.name] = RouteCounts()
        r.last_legacy = max(r.last_legacy, e.last_seen)


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def _window(legacy: int, new: int) -> WindowJSON:
    return {
        "requests": legacy + new,
        "new": new,
        "legacy": legacy,
        "new_share": _ratio(new, legacy + new),
    }


def windows(
    counts: RouteCounts | None, series: Series | None, now: float, since: float = 0.0
) -> dict[str, WindowJSON]:
    """One route's figures per window: ``all`` from the cumulative counters, the
    others from its time buckets (``windows.Series``), after ``since`` (a reset)."""
    out: dict[str, WindowJSON] = {}
    for name, seconds in WINDOWS.items():
        if seconds is None:
            c = counts or RouteCounts()
            out[name] = _window(c.legacy, c.new)
        elif series is None:
            out[name] = _window(0, 0)
        else:
            out[name] = _window(*series.window(now, seconds, since))
    return out


def _overall_windows(state: ProgressState, now: float) -> dict[str, WindowJSON]:
    """The sum of every tracked route's windows (unrouted and removed routes too)."""
    sums = {name: [0, 0] for name in WINDOWS}
    for name in state.routes.keys() | state.series.keys():
        per = windows(
            state.routes.get(name), state.series.get(name), now, state.reset_at.get(name, 0.0)
        )
        for w, figures in per.items():
            sums[w][0] += figures["legacy"]
            sums[w][1] += figures["new"]
    return {w: _window(legacy, new) for w, (legacy, new) in sums.items()}


def coverage(state: ProgressState, snap: Snapshot) -> CoverageJSON:
    """Endpoints moved of the endpoints seen: learned endpoints (legacy surface only)
    plus those a route has claimed since; moved when that route's primary is new."""
    moved = 0
    for key in state.claimed:
        route = claimed_by(snap, key)
        if route is not None and route.target == TARGET_NEW:
            moved += 1
    seen = len(state.claimed) + sum(1 for e in state.endpoints.values() if e.surface)
    return {"endpoints_seen": seen, "endpoints_moved": moved, "ratio": _ratio(moved, seen)}


def route_rows(
    routes: Mapping[str, RouteCounts],
    snap: Snapshot,
    now: float,
    idle_after: float,
    state: ProgressState | None = None,
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
                "windows": windows(
                    counts,
                    None if state is None else state.series.get(compiled.name),
                    now,
                    0.0 if state is None else state.reset_at.get(compiled.name, 0.0),
                ),
                "reset_at": None
                if state is None
                else _iso_or_none(state.reset_at.get(compiled.name, 0.0)),
            }
        )
    return rows


def _totals(state: ProgressState) -> tuple[int, int]:
    """(new, legacy) over every route ever tracked, unrouted and removed ones too."""
    new = sum(r.new for r in state.routes.values())
    legacy = sum(r.legacy for r in state.routes.values())
    return new, legacy


_CLASS_NAMES: Final = tuple((1 << c, f"{c}xx") for c in range(1, 6))


def _classes(bits: int) -> list[str]:
    names = [name for bit, name in _CLASS_NAMES if bits & bit]
    if bits & NOT_FOUND:
        names.append("404/405")
    return names


def _endpoints(
    state: ProgressState, total: int, limit: int | None, *, everything: bool = False
) -> list[EndpointJSON]:
    ranked = sorted(
        ((k, e) for k, e in state.endpoints.items() if everything or e.surface),
        key=lambda kv: (-kv[1].count, kv[0]),
    )
    if limit is not None:
        ranked = ranked[:limit]
    return [
        {
            "endpoint": key,
            "requests": e.count,
            "overcount": e.overcount,
            "share": _ratio(e.count, total),
            "last_seen": iso(e.last_seen),
            "status_classes": _classes(e.classes),
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
        (e.last_seen, key)
        for key, e in state.endpoints.items()
        if e.surface and now - e.last_seen > idle_after
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
    rows = route_rows(state.routes, snap, now, idle_after, state)
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
            "windows": _overall_windows(state, now),
            "coverage": coverage(state, snap),
        },
        "routes": rows,
        "backlog": _endpoints(state, total, backlog_limit),
        "backlog_total": _surface(state),
        "decommission": _candidates(state, snap, now, idle_after),
    }


def _surface(state: ProgressState) -> int:
    return sum(1 for e in state.endpoints.values() if e.surface)


def backlog_model(
    state: ProgressState,
    snap: Snapshot,
    now: float,
    *,
    limit: int | None = None,
    everything: bool = False,
) -> BacklogJSON:
    """The remaining legacy surface, ranked by requests (all of it without ``limit``).
    Endpoints that only ever answered 404/405 are left out unless ``everything``."""
    new, legacy = _totals(state)
    total = new + legacy
    surface = _surface(state)
    return {
        "version": snap.version,
        "generated_at": iso(now),
        "requests": total,
        "total": surface,
        "not_found_total": len(state.endpoints) - surface,
        "floor": state.floor,
        "endpoints": _endpoints(state, total, limit, everything=everything),
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
