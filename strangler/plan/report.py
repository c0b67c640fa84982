"""The plan as text for people (totals first) and as JSON for machines."""

from __future__ import annotations

from typing import TypedDict

from strangler.plan.replay import Figures, PlanResult
from strangler.plan.traffic import Traffic

__all__ = ["PlanJSON", "format_text", "to_json"]


class PlanJSON(TypedDict):
    requests: int
    moved: int
    moved_share: float
    owner_changes: list[dict[str, object]]
    groups: list[dict[str, object]]
    idle_routes: list[str]
    before: dict[str, object]
    after: dict[str, object]
    release: list[dict[str, object]]
    not_evaluated: list[dict[str, str]]
    sample: dict[str, object]
    route_requests: dict[str, int]


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _figures(f: Figures) -> dict[str, object]:
    return {
        "migrated_share": round(f.migrated_share, 6),
        "new_requests": round(f.new, 3),
        "legacy_endpoints": f.legacy_endpoints,
        "legacy_surface_requests": f.legacy_surface_requests,
        "legacy_surface_share": round(f.legacy_surface_share, 6),
    }


def _sample(traffic: Traffic) -> dict[str, object]:
    return {
        "lines": traffic.lines,
        "requests": traffic.requests,
        "distinct": len(traffic.counts),
        "formats": sorted(traffic.formats),
        "bad_lines": traffic.bad,
        "bad_examples": [
            {"source": b.source, "line": b.line, "reason": b.reason, "text": b.text}
            for b in traffic.bad_lines
        ],
    }


def to_json(result: PlanResult, traffic: Traffic) -> PlanJSON:
    return {
        "requests": result.requests,
        "moved": result.moved,
        "moved_share": round(result.moved_share, 6),
        "owner_changes": [
            {
                "old_route": o.old_route,
                "old_owner": o.old_owner,
                "new_route": o.new_route,
                "new_owner": o.new_owner,
                "requests": o.requests,
            }
            for o in result.owner_changes
        ],
        "groups": [
            {
                "old_route": g.old_route,
                "old_backend": g.old_backend,
                "new_route": g.new_route,
                "new_backend": g.new_backend,
                "requests": g.requests,
                "share": round(g.requests / result.requests, 6) if result.requests else 0.0,
                "top": [{"endpoint": e, "requests": n} for e, n in g.top],
            }
            for g in result.groups
        ],
        "idle_routes": result.idle_routes,
        "before": _figures(result.before),
        "after": _figures(result.after),
        "release": [
            {
                "route": r.route,
                "change": r.change,
                "before": r.before,
                "after": r.after,
                "requests": r.requests,
                "runtime": r.runtime,
            }
            for r in result.release
        ],
        "not_evaluated": [{"route": u.route, "condition": u.condition} for u in result.unevaluated],
        "sample": _sample(traffic),
        "route_requests": result.route_requests,
    }


def format_text(result: PlanResult, traffic: Traffic) -> str:
    """A readable report, totals first."""
    r = result
    out: list[str] = []
    if r.moved:
        out.append(
            f"{r.moved:,} of {r.requests:,} requests ({_pct(r.moved_share)}) "
            "change route or backend"
        )
    else:
        out.append(f"No request of the {r.requests:,} in the sample changes route or backend")
    owner_reqs = sum(o.requests for o in r.owner_changes)
    if r.owner_changes:
        out.append(
            f"{owner_reqs:,} requests ({_pct(owner_reqs / r.requests)}) change owner "
            f"({_n(len(r.owner_changes), 'route pair')})"
        )
    b, a = r.before, r.after
    out.append(f"Migrated share: {_pct(b.migrated_share)} → {_pct(a.migrated_share)}")
    out.append(
        f"Legacy surface: {_n(b.legacy_endpoints, 'endpoint')}, {_pct(b.legacy_surface_share)} "
        f"of requests → {_n(a.legacy_endpoints, 'endpoint')}, {_pct(a.legacy_surface_share)}"
    )
    out.append(
        f"Sample: {traffic.requests:,} requests ({len(traffic.counts):,} distinct) from "
        f"{', '.join(sorted(traffic.formats)) or 'no'} logs; "
        f"{_n(traffic.bad, 'line')} not read"
    )
    for bad in traffic.bad_lines:
        out.append(f"  {bad.source}:{bad.line}: {bad.reason}: {bad.text}")
    if r.owner_changes:
        out.append("")
        out.append("Owner changes (a route now catches another team's traffic):")
        for o in r.owner_changes:
            out.append(
                f"  {o.old_route} ({o.old_owner or '-'}) → {o.new_route} ({o.new_owner or '-'})"
                f"  {o.requests:,} requests"
            )
    if r.groups:
        out.append("")
        out.append("Moved requests, by old route → new route:")
        for g in r.groups:
            old = f"{g.old_route} [{g.old_backend}]"
            new = f"{g.new_route} [{g.new_backend}]"
            share = _pct(g.requests / r.requests)
            out.append(f"  {old} → {new}  {g.requests:,} requests ({share})")
            for endpoint, n in g.top:
                out.append(f"      {n:>8,}  {endpoint}")
    if r.idle_routes:
        out.append("")
        out.append("Routes that catch nothing in the sample: " + ", ".join(r.idle_routes))
    if r.release:
        out.append("")
        out.append("Release state when applied:")
        for row in r.release:
            line = f"  {row.route} ({row.change}): {row.before} → {row.after}"
            if row.change != "removed":
                line += f", {row.requests:,} requests in the sample"
            if row.runtime:
                line += f"; running proxy: {row.runtime}"
            out.append(line)
    if r.unevaluated:
        out.append("")
        out.append(
            "Not evaluated (the sample does not carry them; replayed as if absent): "
            + "; ".join(f"{u.route}: {u.condition}" for u in r.unevaluated)
        )
    return "\n".join(out)


def _n(n: int, noun: str) -> str:
    """``1 endpoint``, ``2 endpoints``, ``1,234 endpoints``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
