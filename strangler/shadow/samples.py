"""Shadow results per route: counts, parity, top differing paths and a ring of samples.

``ShadowResults`` is owned by the server (one per process) and written only by shadow
jobs (and the runner, for drops); the admin API reads it. Everything is bounded:

- counts are integers per route; routes come from the config;
- differing JSON paths are counted in a ``TopCounter`` of at most ``MAX_TRACKED_PATHS``
  entries per route (the space-saving algorithm: a new path past the cap replaces the
  least counted one, so frequent paths are never lost and counts are upper bounds);
- samples are a ring of the last ``samples`` mismatches and errors per route, each
  *redacted*: ``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``
  and other credential-like header values (``SENSITIVE``), and credential-like query
  parameter values, are replaced by ``<redacted>`` (in header differences too);
  bodies are cut to
  ``BODY_EXCERPT`` bytes.

``RouteResults.figures()`` is a route's results as JSON data; ``merge_figures`` adds
several workers' up (``shared``), and ``route_summary``/``route_detail`` render the
admin API's answers from either.

Parity is ``matches / compared``, where ``compared = matches + mismatches``: errors,
drops, skipped jobs (the primary failed, or the primary disagreed with itself on the
status in noise mode) and *unstable* ones (the shadow differed, but so did a second
answer of the primary at the same places: a race with a write, or noise) are counted
apart and never move it. ``RouteResults.gate()`` gives the same figures over rolling
windows (``gate.OutcomeWindow``: the last N compared, the last few minutes). A verdict
``truncated`` (a body over ``max_body``) rests on status and headers and counts like
any other.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypedDict, cast
from urllib.parse import quote, unquote

from multidict import MultiMapping

from strangler.config.shadow_model import NoiseSpec
from strangler.shadow.compare import ABSENT, Difference, Kind, Rules, Verdict
from strangler.shadow.gate import GATE_LAST, GATE_SECONDS, Gate, OutcomeWindow, merge_tails
from strangler.shadow.metrics import KINDS, RouteShadowMetrics, ShadowMetrics
from strangler.shadow.noise import NoiseLearner

__all__ = [
    "BODY_EXCERPT",
    "MAX_TRACKED_PATHS",
    "REDACTED",
    "SENSITIVE",
    "RouteFigures",
    "RouteResults",
    "Sample",
    "ShadowResults",
    "Side",
    "TopCounter",
    "merge_figures",
    "redact_differences",
    "redact_headers",
    "redact_target",
    "route_detail",
    "route_summary",
]

BODY_EXCERPT: Final = 2048
MAX_TRACKED_PATHS: Final = 200
REDACTED: Final = "<redacted>"
SENSITIVE: Final = frozenset(
    {
        "authorization", "proxy-authorization", "cookie", "set-cookie", "set-cookie2",
        "x-api-key", "x-auth-token", "x-csrf-token", "x-xsrf-token", "x-amz-security-token",
    }
)  # fmt: skip
"""Header names whose values never appear in samples (besides ``_SECRETISH`` names)."""
_SECRETISH: Final = re.compile(
    r"token|secret|passw|api[-_]?key|session|signature|credential|auth|^sig$|^key$|^code$",
    re.IGNORECASE,
)

Outcome = Literal["mismatch", "error"]


def redact_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Headers with credential-like values replaced by ``<redacted>``.

    >>> redact_headers([("Authorization", "Bearer x"), ("Accept", "*/*")])
    (('Authorization', '<redacted>'), ('Accept', '*/*'))
    """
    return tuple((k, REDACTED if _sensitive(k) else v) for k, v in headers)


def _sensitive(name: str) -> bool:
    return name.lower() in SENSITIVE or _SECRETISH.search(name) is not None


def redact_differences(differences: Iterable[Difference]) -> tuple[Difference, ...]:
    """Differences with the values of credential-like headers redacted (a difference
    on ``Set-Cookie`` still shows, not what the cookies were)."""
    return tuple(
        Difference(
            d.kind,
            d.where,
            d.primary if d.primary == ABSENT else REDACTED,
            d.shadow if d.shadow == ABSENT else REDACTED,
        )
        if d.kind == "header" and _sensitive(d.where)
        else d
        for d in differences
    )


def redact_target(target: str) -> str:
    """A request target with credential-like query parameter values redacted.

    >>> redact_target("/a?id=7&access_token=abc&sig=1")
    '/a?id=7&access_token=%3Credacted%3E&sig=%3Credacted%3E'
    """
    path, q, query = target.partition("?")
    if not q:
        return target
    parts = []
    for item in query.split("&"):
        name, eq, _value = item.partition("=")
        if eq and _SECRETISH.search(unquote(name)):
            item = f"{name}={quote(REDACTED)}"
        parts.append(item)
    return f"{path}?{'&'.join(parts)}"


def _excerpt(body: bytes | None) -> str | None:
    if body is None:
        return None
    text = body[:BODY_EXCERPT].decode("utf-8", "replace")
    return text + ("…" if len(body) > BODY_EXCERPT else "")


@dataclass(frozen=True, slots=True)
class Side:
    """One answer in a sample (already redacted)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: str | None  # the decoded body's first BODY_EXCERPT bytes; None: not captured
    body_bytes: int  # the body's size as received (before decoding)

    @classmethod
    def of(cls, status: int, headers: MultiMapping[str], body: bytes | None, seen: int) -> Side:
        return cls(status, redact_headers(headers.items()), _excerpt(body), seen)

    def as_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "headers": [list(h) for h in self.headers],
            "body": self.body,
            "body_bytes": self.body_bytes,
        }


@dataclass(frozen=True, slots=True)
class Sample:
    """One mismatch or error, kept for people to look at."""

    at: float  # unix time
    outcome: Outcome
    method: str
    target: str  # redacted
    request_headers: tuple[tuple[str, str], ...]  # redacted
    primary: Side | None
    shadow: Side | None
    differences: tuple[Difference, ...] = ()
    more: int = 0
    truncated: bool = False
    error: str = ""
    duration: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "at": self.at,
            "outcome": self.outcome,
            "method": self.method,
            "target": self.target,
            "request_headers": [list(h) for h in self.request_headers],
            "primary": None if self.primary is None else self.primary.as_dict(),
            "shadow": None if self.shadow is None else self.shadow.as_dict(),
            "differences": [d.as_dict() for d in self.differences],
            "more": self.more,
            "truncated": self.truncated,
            "error": self.error,
            "duration": self.duration,
        }


class TopCounter:
    """Approximate counts of the most frequent keys in bounded space (space-saving).

    >>> t = TopCounter(capacity=2)
    >>> for k in "aababc":
    ...     t.add(k)
    >>> t.top(2)
    [('a', 3), ('c', 3)]
    """

    __slots__ = ("_counts", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._counts: dict[str, int] = {}

    def add(self, key: str, n: int = 1) -> None:
        counts = self._counts
        if key in counts or len(counts) < self.capacity:
            counts[key] = counts.get(key, 0) + n
            return
        victim = min(counts, key=counts.__getitem__)
        floor = counts.pop(victim)
        counts[key] = floor + n

    def top(self, n: int) -> list[tuple[str, int]]:
        return sorted(self._counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    def __len__(self) -> int:
        return len(self._counts)


class RouteResults:
    """One route's shadow figures. Written by shadow jobs only."""

    __slots__ = (
        "_metrics", "_rules", "_rules_base", "_rules_version", "by_kind", "compared",
        "dropped", "duration_max", "duration_sum", "errors", "matches", "mismatches",
        "name", "noise", "paths", "samples", "skipped", "truncated", "unstable", "window",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        metrics: RouteShadowMetrics | None,
        *,
        samples: int,
        noise: NoiseSpec,
        window: OutcomeWindow | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._metrics = metrics
        self.compared = self.matches = self.mismatches = 0
        self.errors = self.dropped = self.skipped = self.truncated = self.unstable = 0
        self.by_kind: dict[Kind, int] = dict.fromkeys(KINDS, 0)
        self.paths = TopCounter(MAX_TRACKED_PATHS)
        self.samples: deque[Sample] = deque(maxlen=samples)
        self.noise = NoiseLearner(noise, clock=clock)
        self.window = window if window is not None else OutcomeWindow(clock=clock)
        self.duration_sum = 0.0
        self.duration_max = 0.0
        self._rules: Rules | None = None
        self._rules_base: Rules | None = None
        self._rules_version = -1

    @property
    def parity(self) -> float | None:
        """matches / compared, or ``None`` before the first comparison."""
        return self.matches / self.compared if self.compared else None

    def rules(self, base: Rules) -> Rules:
        """``base`` plus the route's learned noisy paths (compiled once per change)."""
        noisy = self.noise.noisy  # forgets what has left the noise window first
        if self._rules_version != self.noise.version:
            self._rules = None
            self._rules_version = self.noise.version
            if self._metrics is not None:
                self._metrics.noisy.set(len(noisy))
        if not noisy:
            return base
        if self._rules is None or self._rules_base is not base:
            self._rules = base.with_ignored(noisy)
            self._rules_base = base
        return self._rules

    def gate(self) -> Gate:
        """Parity, compared and unstable over the rolling windows (``gate.Gate``)."""
        return self.window.gate()

    def _timed(self, duration: float | None) -> None:
        if duration is None:
            return
        self.duration_sum += duration
        self.duration_max = max(self.duration_max, duration)
        if self._metrics is not None:
            self._metrics.duration.observe(duration)

    def record_verdict(
        self, verdict: Verdict, duration: float | None, sample: Sample | None = None
    ) -> None:
        """Count a comparison; keep ``sample`` if it was a mismatch."""
        self.compared += 1
        self.truncated += verdict.truncated
        self._timed(duration)
        m = self._metrics
        self.window.record("match" if verdict.match else "mismatch")
        if verdict.match:
            self.matches += 1
            if m is not None:
                m.match.inc()
        else:
            self.mismatches += 1
            for kind in verdict.kinds:
                self.by_kind[kind] += 1
                if m is not None:
                    m.kinds[kind].inc()
            for path in verdict.patterns:
                self.paths.add(str(path))
            if sample is not None:
                self.samples.append(sample)
            if m is not None:
                m.mismatch.inc()
        if m is not None:
            m.parity.set(self.matches / self.compared)

    def record_unstable(self, duration: float | None) -> None:
        """The shadow differed, and so did the primary's own second answer at the same
        places: a race with a write, or noise. Not a regression; not in parity."""
        self.unstable += 1
        self.window.record("unstable")
        self._timed(duration)
        if self._metrics is not None:
            self._metrics.unstable.inc()

    def record_error(self, duration: float | None, sample: Sample | None = None) -> None:
        """The shadow side failed (refused, reset, timed out, unreadable)."""
        self.errors += 1
        self._timed(duration)
        if sample is not None:
            self.samples.append(sample)
        if self._metrics is not None:
            self._metrics.error.inc()

    def record_drop(self) -> None:
        """The runner was full: the request was not mirrored."""
        self.dropped += 1
        if self._metrics is not None:
            self._metrics.dropped.inc()

    def record_skip(self) -> None:
        """Nothing to compare: the primary failed, or disagreed with itself."""
        self.skipped += 1

    def figures(self, *, samples: bool = True, tail: bool = False) -> RouteFigures:
        """Everything the admin API shows of the route, as plain JSON data: what a
        worker publishes for the others, and what ``merge_figures`` adds up.
        ``samples=False``: with an empty sample list (the caller adds them).
        ``tail``: with the gate's ring, for an exact merge of ``last`` (``merge_gates``);
        a few thousand entries, so only for what is published or shown."""
        return {
            "route": self.name,
            "compared": self.compared,
            "matches": self.matches,
            "mismatches": self.mismatches,
            "unstable": self.unstable,
            "errors": self.errors,
            "dropped": self.dropped,
            "skipped": self.skipped,
            "truncated": self.truncated,
            "by_kind": {str(k): n for k, n in self.by_kind.items()},
            "duration_sum": self.duration_sum,
            "duration_max": self.duration_max,
            "paths": dict(self.paths.top(MAX_TRACKED_PATHS)),
            "samples": [s.as_dict() for s in self.samples] if samples else [],  # oldest first
            "noise": self.noise.as_dict(),
            "gate": self._gate_data(tail),
        }

    def _gate_data(self, tail: bool) -> dict[str, Any]:
        """The gate windows as data every worker renders the same: without the age of
        the oldest outcome of ``last``, which changes with every read."""
        data = self.gate().as_dict()
        last = data["last"]
        if isinstance(last, dict):
            last.pop("seconds", None)
        if tail:
            data["tail"] = self.window.tail()  # left out of the answers (route_detail)
        return data

    def changes(self) -> tuple[int, ...]:
        """Moves whenever ``figures()`` does (every figure changes with a count): a
        cheap test of whether there is anything new to publish."""
        n = self.noise
        return (
            self.compared, self.errors, self.dropped, self.skipped, self.unstable,
            n.observations,
            n.version, n.samples, n.min_observations,
        )  # fmt: skip

    def summary(self) -> dict[str, object]:
        return route_summary(self.figures())

    def detail(self, top: int = 20) -> dict[str, object]:
        return route_detail(self.figures(), top)


class RouteFigures(TypedDict):
    """One route's results as data (``RouteResults.figures``)."""

    route: str
    compared: int
    matches: int
    mismatches: int
    errors: int
    dropped: int
    skipped: int
    truncated: int
    by_kind: dict[str, int]
    duration_sum: float
    duration_max: float
    paths: dict[str, int]  # differing path -> count (at most MAX_TRACKED_PATHS)
    samples: list[dict[str, Any]]  # Sample.as_dict(), oldest first
    noise: dict[str, Any]  # NoiseLearner.as_dict()
    unstable: int  # differed, but so did the primary's own second answer
    gate: dict[str, Any]  # Gate.as_dict(): the rolling windows


_SUMMED: Final = (
    "compared", "matches", "mismatches", "errors", "dropped", "skipped", "truncated", "unstable",
)  # fmt: skip


def merge_figures(parts: Sequence[RouteFigures], sample_limit: int) -> RouteFigures:
    """Several workers' figures of one route as one proxy's (``parts[0]`` first, the
    others in a fixed order, so every worker computes the same floats).

    Counts and duration sums are summed, the maximum is the maximum; differing paths
    are summed per path and the ``MAX_TRACKED_PATHS`` most counted kept (each count
    stays an upper bound, as in ``TopCounter``); the samples are the newest
    ``sample_limit`` of all, by time. Noise: observations and overflow summed, the
    noisy paths of every worker with their counts summed, ``learning`` while any
    worker still learns; the thresholds are ``parts[0]``'s (the same config).
    """
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    merged = RouteFigures(
        route=first["route"],
        compared=0, matches=0, mismatches=0, errors=0, dropped=0, skipped=0, truncated=0,
        unstable=0, by_kind={}, duration_sum=0.0, duration_max=0.0, paths={}, samples=[],
        noise={}, gate=merge_gates([part["gate"] for part in parts]),
    )  # fmt: skip
    paths: dict[str, int] = {}
    noisy: dict[str, int] = {}
    ignored: dict[str, object] = {}
    observations = overflow = 0
    learning = False
    for part in parts:
        for key in _SUMMED:
            merged[key] += part[key]
        for kind, n in part["by_kind"].items():
            merged["by_kind"][kind] = merged["by_kind"].get(kind, 0) + n
        merged["duration_sum"] += part["duration_sum"]
        merged["duration_max"] = max(merged["duration_max"], part["duration_max"])
        for path, n in part["paths"].items():
            paths[path] = paths.get(path, 0) + n
        noise = part["noise"]
        observations += int(noise.get("observations", 0))
        overflow += int(noise.get("overflow", 0))
        learning = learning or bool(noise.get("learning", False))
        for entry in noise.get("noisy_paths", ()):
            noisy[entry["path"]] = noisy.get(entry["path"], 0) + int(entry["differed"])
        for entry in noise.get("ignored", ()):
            ignored.setdefault(str(entry["path"]), entry)
    ranked = sorted(paths.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_TRACKED_PATHS]
    merged["paths"] = dict(ranked)
    samples = [s for part in parts for s in part["samples"]]
    samples.sort(key=lambda s: float(s["at"]))  # stable: ties keep the parts' order
    merged["samples"] = samples[-sample_limit:] if sample_limit > 0 else []
    merged["noise"] = {
        "observations": observations,
        "window_seconds": first["noise"].get("window_seconds"),
        "samples": first["noise"].get("samples"),
        "min_observations": first["noise"].get("min_observations"),
        "share": first["noise"].get("share"),
        "learning": learning,
        "noisy_paths": [
            {"path": p, "differed": n, "share": n / observations if observations else None}
            for p, n in sorted(noisy.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "ignored": list(ignored.values()),
        "overflow": overflow,
    }
    return merged


def merge_gates(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several workers' gate windows as one. ``recent``: counts summed over the time
    window, parity recomputed. ``last``: the proxy's last ``last_n`` compared, whichever
    worker compared them, from the workers' rings (``gate.merge_tails``); merged again
    with another worker's, the result stays exact (it keeps the merged ring). Without
    every part's ring (a worker of an older version), ``last`` is summed instead."""
    if len(parts) == 1:
        return parts[0]
    last_n = parts[0].get("last_n")
    out: dict[str, Any] = {"last_n": last_n, "window_seconds": parts[0].get("window_seconds")}
    tails = [part.get("tail") for part in parts]
    if isinstance(last_n, int) and all(isinstance(t, dict) for t in tails):
        out["tail"], (m, mm, u) = merge_tails(last_n, cast("list[dict[str, object]]", tails))
        out["last"] = {
            "compared": m + mm, "matches": m, "mismatches": mm, "unstable": u,
            "parity": m / (m + mm) if m + mm else None,
        }  # fmt: skip
    for key in ("last", "recent"):
        if key in out:
            continue
        counts = dict.fromkeys(("compared", "matches", "mismatches", "unstable"), 0)
        seconds = 0.0
        for part in parts:
            window = part.get(key) or {}
            for name in counts:
                counts[name] += int(window.get(name, 0))
            seconds = max(seconds, float(window.get("seconds", 0.0)))
        compared = counts["compared"]
        out[key] = {**counts, "parity": counts["matches"] / compared if compared else None}
        if key == "recent":
            out[key]["seconds"] = seconds
    return out


def route_summary(f: RouteFigures) -> dict[str, object]:
    """The ``GET /api/shadow`` entry of one route."""
    timed = f["compared"] + f["errors"] + f["unstable"]
    return {
        "route": f["route"],
        "compared": f["compared"],
        "matches": f["matches"],
        "mismatches": f["mismatches"],
        "parity": f["matches"] / f["compared"] if f["compared"] else None,
        "unstable": f["unstable"],
        "errors": f["errors"],
        "dropped": f["dropped"],
        "skipped": f["skipped"],
        "truncated": f["truncated"],
        "mismatches_by_kind": dict(f["by_kind"]),
        "duration_mean": f["duration_sum"] / timed if timed else None,
        "duration_max": f["duration_max"] if timed else None,
        "noisy_paths": len(f["noise"].get("noisy_paths", ())),
    }


def route_detail(f: RouteFigures, top: int = 20) -> dict[str, object]:
    """The ``GET /api/shadow/{route}`` answer."""
    ranked = sorted(f["paths"].items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return {
        **route_summary(f),
        "top_paths": [{"path": p, "count": n} for p, n in ranked],
        "gate": {k: v for k, v in f["gate"].items() if k != "tail"},
        "noise": f["noise"],
        "samples": list(reversed(f["samples"])),  # newest first
    }


class ShadowResults:
    """Every route's ``RouteResults``; one per process, owned by the server.

    ``metrics``: the shadow metrics to update as results come in (``None`` in tests
    that only look at the figures). ``samples``: the ring size per route.
    """

    def __init__(
        self,
        metrics: ShadowMetrics | None = None,
        *,
        samples: int = 20,
        gate_last: int = GATE_LAST,
        gate_seconds: float = GATE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self.sample_limit = samples
        self.gate_last = gate_last
        self.gate_seconds = gate_seconds
        self.clock = clock
        self.routes: dict[str, RouteResults] = {}
        self.started = time.time()

    def route(self, name: str, noise: NoiseSpec | None = None) -> RouteResults:
        """The route's results, made on first use (and its metric children bound).
        ``noise``: the route's current noise thresholds, adopted when given."""
        r = self.routes.get(name)
        if r is None:
            bound = None if self.metrics is None else self.metrics.bind(name)
            r = self.routes[name] = RouteResults(
                name,
                bound,
                samples=self.sample_limit,
                noise=noise or NoiseSpec(),
                window=OutcomeWindow(self.gate_last, self.gate_seconds, clock=self.clock),
                clock=self.clock,
            )
        elif noise is not None:
            r.noise.configure(noise)
        return r

    def configure(self, specs: Mapping[str, NoiseSpec]) -> None:
        """After a (re)load: ``specs`` maps every route with shadow to its noise spec.
        Routes are created (so they show at zero), updated, and routes no longer
        shadowed are forgotten."""
        for name, noise in specs.items():
            self.route(name, noise)
        for name in [n for n in self.routes if n not in specs]:
            del self.routes[name]

    def figures(self) -> dict[str, RouteFigures]:
        """Every route's ``RouteResults.figures()``, by route name."""
        return {name: r.figures() for name, r in self.routes.items()}

    def changes(self) -> tuple[object, ...]:
        """Moves whenever ``figures()`` does (see ``RouteResults.changes``)."""
        return tuple((name, r.changes()) for name, r in self.routes.items())

    def summary(self) -> dict[str, object]:
        return {
            "since": self.started,
            "routes": [self.routes[n].summary() for n in sorted(self.routes)],
        }

    def gate(self, name: str) -> Gate | None:
        """One route's gate figures (``None``: no route with shadow by that name)."""
        r = self.routes.get(name)
        return None if r is None else r.gate()

    def detail(self, name: str, top: int = 20) -> dict[str, object] | None:
        r = self.routes.get(name)
        return None if r is None else r.detail(top)
