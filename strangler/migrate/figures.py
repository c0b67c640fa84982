"""The autopilot's figures, read from the proxy's own Prometheus counters.

``read_counters(registry)`` takes one cumulative reading of every route (answers by
side and status class, the duration histogram by side, fallbacks, shadow outcomes);
``window(start, now, ...)`` is the difference of two readings: the figures of one
route since the window began. With ``--workers N`` the registry is the multiprocess
one, so the reading is the sum over every worker: the process that evaluates a plan
sees every worker's traffic, with no per-request cost beyond the metrics the proxy
keeps anyway.

What counts: an answer with status 5xx is an error; a request the new side failed and
the primary answered (a fallback) counts as a new-side request and error. p99 is
estimated from the histogram buckets as Prometheus' ``histogram_quantile`` does
(linear within the bucket), so it is as coarse as the buckets (1 ms .. 10 s). Shadow
parity is matches / (matches + mismatches); ``unstable`` outcomes (a difference the
primary also shows against itself) are not counted either way.

A counter that went down (the process group restarted) makes the window invalid:
``window`` returns ``None`` and the runner starts a new window.

Replicas on several hosts (``state.backend: redis``) each publish their own process's
reading (``encode``/``decode``: JSON); the evaluator sums them (``combine``), each
replica's window measured from its own start, so ``min_requests`` and the error rate
count every replica's traffic, not only the evaluating one's.

>>> from prometheus_client import CollectorRegistry, Counter
>>> r = CollectorRegistry()
>>> c = Counter("strangler_requests", "", ("route", "upstream", "target", "status_class"),
...             registry=r)
>>> c.labels("a", "orders", "new", "2xx").inc(9); c.labels("a", "orders", "new", "5xx").inc()
>>> before = read_counters(CollectorRegistry())
>>> w = window(before, read_counters(r), "a", new="orders", primary="legacy")
>>> (w.new_requests, w.new_errors)
(10, 1)
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.registry import Collector

from strangler.migrate.machine import Figures

__all__ = [
    "Counters", "Readings", "RouteCounters", "combine", "decode", "encode", "quantile",
    "read_counters", "window",
]  # fmt: skip


@dataclass(slots=True)
class RouteCounters:
    """One route's cumulative counts."""

    answers: dict[tuple[str, str], float] = field(default_factory=dict)  # (upstream, class)
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)  # target -> le -> n
    fallbacks: float = 0.0
    shadow: dict[str, float] = field(default_factory=dict)  # outcome -> n


Counters = Mapping[str, RouteCounters]
Readings = dict[str, Counters]  # replica (a process's store owner) -> its reading


def _add(into: dict[str, RouteCounters], reading: Counters) -> None:
    for route, rc in reading.items():
        acc = into.setdefault(route, RouteCounters())
        for key, n in rc.answers.items():
            acc.answers[key] = acc.answers.get(key, 0.0) + n
        for target, per in rc.buckets.items():
            mine = acc.buckets.setdefault(target, {})
            for le, n in per.items():
                mine[le] = mine.get(le, 0.0) + n
        acc.fallbacks += rc.fallbacks
        for outcome, n in rc.shadow.items():
            acc.shadow[outcome] = acc.shadow.get(outcome, 0.0) + n


def combine(start: Readings, now: Readings) -> tuple[Counters, Counters]:
    """The sums of the replicas' readings at a window's start and now, over the
    replicas that answer now. A replica first seen now is added to ``start`` with its
    reading (its window starts now); one that stopped publishing drops out of both
    sums, so nothing counts twice or goes down because a replica left.

    >>> a = {"r": RouteCounters(fallbacks=2.0)}
    >>> start = {"one": a}
    >>> s, n = combine(start, {"one": {"r": RouteCounters(fallbacks=5.0)}, "two": a})
    >>> s["r"].fallbacks, n["r"].fallbacks, sorted(start)
    (4.0, 7.0, ['one', 'two'])
    """
    before: dict[str, RouteCounters] = {}
    after: dict[str, RouteCounters] = {}
    for replica, reading in now.items():
        _add(before, start.setdefault(replica, reading))
        _add(after, reading)
    return before, after


def encode(reading: Counters) -> str:
    """A reading as JSON, for the other replicas (``decode`` reads it back)."""
    return json.dumps(
        {
            route: {
                "answers": [[up, cls, n] for (up, cls), n in rc.answers.items()],
                "buckets": {
                    t: [[repr(le), n] for le, n in per.items()] for t, per in rc.buckets.items()
                },
                "fallbacks": rc.fallbacks,
                "shadow": rc.shadow,
            }
            for route, rc in reading.items()
        },
        separators=(",", ":"),
    )


def decode(text: str | bytes) -> dict[str, RouteCounters] | None:
    """``encode``'s JSON back as a reading; ``None`` for anything else.

    >>> r = {"r": RouteCounters({("legacy", "2xx"): 3.0}, {"new": {0.1: 1.0, math.inf: 2.0}})}
    >>> decode(encode(r)) == r
    True
    """
    try:
        raw = json.loads(text)
        return {
            str(route): RouteCounters(
                answers={(str(up), str(cls)): float(n) for up, cls, n in rc["answers"]},
                buckets={
                    str(t): {float(le): float(n) for le, n in per}
                    for t, per in rc["buckets"].items()
                },
                fallbacks=float(rc["fallbacks"]),
                shadow={str(k): float(v) for k, v in rc["shadow"].items()},
            )
            for route, rc in raw.items()
        }
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def read_counters(registry: Collector) -> dict[str, RouteCounters]:
    """One reading of every route's counters (cheap enough for once a second)."""
    out: dict[str, RouteCounters] = defaultdict(RouteCounters)
    for family in registry.collect():
        name = family.name
        if name == "strangler_requests":
            for s in family.samples:
                if s.name.endswith("_total"):
                    key = (s.labels["upstream"], s.labels["status_class"])
                    rc = out[s.labels["route"]]
                    rc.answers[key] = rc.answers.get(key, 0.0) + s.value
        elif name == "strangler_request_duration_seconds":
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    le = math.inf if s.labels["le"] == "+Inf" else float(s.labels["le"])
                    per = out[s.labels["route"]].buckets.setdefault(s.labels["target"], {})
                    per[le] = per.get(le, 0.0) + s.value
        elif name == "strangler_fallbacks":
            for s in family.samples:
                if s.name.endswith("_total"):
                    out[s.labels["route"]].fallbacks += s.value
        elif name == "strangler_shadow_requests":
            for s in family.samples:
                if s.name.endswith("_total"):
                    shadow = out[s.labels["route"]].shadow
                    outcome = s.labels["outcome"]
                    shadow[outcome] = shadow.get(outcome, 0.0) + s.value
    return dict(out)


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """``histogram_quantile(q, ...)`` over cumulative bucket counts ``le -> n``.

    >>> round(quantile(0.99, {0.01: 50.0, 0.1: 100.0, math.inf: 100.0}), 6)
    0.0982
    >>> quantile(0.5, {0.1: 0.0, math.inf: 0.0}) is None
    True
    """
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower  # beyond the last finite bucket: its bound, like Prometheus
            inside = count - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, count
    return lower


def _classes(rc: RouteCounters | None, upstream: str) -> dict[str, float]:
    if rc is None:
        return {}
    return {cls: n for (up, cls), n in rc.answers.items() if up == upstream}


def window(start: Counters, now: Counters, route: str, *, new: str, primary: str) -> Figures | None:
    """The figures of ``route`` between two readings (``None``: a counter went down).

    ``new``/``primary`` are the upstreams of the route's new side and primary; the
    duration histogram is kept by target (legacy/new), so p99 is per side only when the
    primary is legacy (the common case) and the new side is not.
    """
    a, b = start.get(route), now.get(route)
    if b is None:
        return Figures()
    deltas: dict[str, dict[str, float]] = {}
    for side, upstream in (("new", new), ("primary", primary)):
        before, after = _classes(a, upstream), _classes(b, upstream)
        d = {cls: after.get(cls, 0.0) - before.get(cls, 0.0) for cls in after}
        if any(v < 0 for v in d.values()):
            return None
        deltas[side] = d
    fallbacks = b.fallbacks - (a.fallbacks if a else 0.0)
    shadow = {k: v - (a.shadow.get(k, 0.0) if a else 0.0) for k, v in b.shadow.items()}
    if fallbacks < 0 or any(v < 0 for v in shadow.values()):
        return None
    p99 = {}
    distinct = primary == "legacy" and new != "legacy"
    for target in ("new", "legacy"):
        after_b = b.buckets.get(target, {})
        before_b = a.buckets.get(target, {}) if a else {}
        diff = {le: n - before_b.get(le, 0.0) for le, n in after_b.items()}
        if any(v < 0 for v in diff.values()):
            return None
        p99[target] = quantile(0.99, diff) if distinct else None
    compared = shadow.get("match", 0.0) + shadow.get("mismatch", 0.0)
    new_total = _total(deltas["new"].values()) + fallbacks
    return Figures(
        new_requests=int(new_total),
        new_errors=int(deltas["new"].get("5xx", 0.0) + fallbacks),
        new_p99=p99["new"],
        primary_requests=int(_total(deltas["primary"].values()) - fallbacks),
        primary_errors=int(deltas["primary"].get("5xx", 0.0)),
        primary_p99=p99["legacy"],
        compared=int(compared),
        parity=shadow.get("match", 0.0) / compared if compared else None,
        fallbacks=int(fallbacks),
    )


def _total(values: Iterable[float]) -> float:
    return sum(values)
