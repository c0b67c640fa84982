"""The migration over time (``GET /api/progress/history``): one point per 5 minutes
for the last 48 hours, one per hour before that, for 90 days.

Each point has the overall share answered by new services in that bucket (every
route, unrouted traffic included), the share per route of the current config, and
the routes migrated then (as a worker saw the config during the bucket). Built at
read time from the merged time buckets (``windows.Series``, the ``five`` and
``hour`` tiers) and marks (``ProgressState.marks``), so every worker serves the same
points. A bucket without traffic and without a mark is left out; a rollback shows as
a dip in the share. Resets do not change the history.
"""

from __future__ import annotations

from typing import TypedDict

from strangler.progress.state import Mark, ProgressState
from strangler.progress.status import iso
from strangler.progress.windows import KEEP
from strangler.runtime import Snapshot

__all__ = ["HistoryJSON", "PointJSON", "history_model"]


class PointJSON(TypedDict):
    t: str  # the bucket's start
    step_seconds: int  # 300 or 3600
    requests: int
    new: int
    new_share: float | None  # None: no request in the bucket
    routes_migrated: int | None  # None: no worker noted the config then
    routes_total: int | None
    routes: dict[str, float]  # route name → new share, routes with requests only


class HistoryJSON(TypedDict):
    version: str
    generated_at: str
    routes: list[str]  # the current config's routes, in order
    points: list[PointJSON]  # oldest first


def _points(
    state: ProgressState, names: list[str], tier: str, first: int, last: int
) -> list[PointJSON]:
    width, _keep = KEEP[tier]
    per_route: dict[int, dict[str, list[int]]] = {}
    totals: dict[int, list[int]] = {}
    wanted = set(names)
    for name, series in state.series.items():
        for i, (legacy, new) in series.tier(tier).items():
            if not first <= i <= last:
                continue
            t = totals.setdefault(i, [0, 0])
            t[0] += legacy
            t[1] += new
            if name in wanted:
                per_route.setdefault(i, {})[name] = [legacy, new]
    marks: dict[int, Mark] = {
        i: m for i, m in state.marks.get(tier, {}).items() if first <= i <= last
    }
    out: list[PointJSON] = []
    for i in sorted(totals.keys() | marks.keys()):
        legacy, new = totals.get(i, (0, 0))
        mark = marks.get(i)
        routes = {
            n: round(c[1] / (c[0] + c[1]), 6)
            for n, c in sorted(per_route.get(i, {}).items())
            if c[0] + c[1]
        }
        out.append(
            {
                "t": iso(i * width),
                "step_seconds": width,
                "requests": legacy + new,
                "new": new,
                "new_share": round(new / (legacy + new), 6) if legacy + new else None,
                "routes_migrated": None if mark is None else mark.migrated,
                "routes_total": None if mark is None else mark.total,
                "routes": routes,
            }
        )
    return out


def history_model(state: ProgressState, snap: Snapshot, now: float) -> HistoryJSON:
    """Hourly points older than 48 hours, then 5-minute points up to ``now``."""
    names = [r.name for r in snap.routes]
    five_w, five_keep = KEEP["five"]
    hour_w, hour_keep = KEEP["hour"]
    first_five = int(now // five_w) - five_keep + 1
    # Hours that end before the 5-minute points begin.
    last_hour = (first_five * five_w) // hour_w - 1
    older = _points(state, names, "hour", int(now // hour_w) - hour_keep + 1, last_hour)
    recent = _points(state, names, "five", first_five, int(now // five_w))
    return {
        "version": snap.version,
        "generated_at": iso(now),
        "routes": names,
        "points": older + recent,
    }
