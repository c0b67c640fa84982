"""The shadow metrics, on the proxy's own ``CollectorRegistry``.

=========================================  =========  ==============================
metric                                     type       labels
=========================================  =========  ==============================
``strangler_shadow_requests_total``        counter    ``route``, ``outcome``: match,
                                                      mismatch, unstable, error,
                                                      dropped
``strangler_shadow_mismatches_total``      counter    ``route``, ``kind``: status,
                                                      header, body (a mismatch counts
                                                      once per kind it shows)
``strangler_shadow_duration_seconds``      histogram  ``route``: shadow request to the
                                                      shadow's last body byte
``strangler_shadow_parity_ratio``          gauge      ``route``: matches / (matches +
                                                      mismatches) so far
``strangler_shadow_noisy_paths``           gauge      ``route``: JSON paths noise
                                                      learning ignores now
=========================================  =========  ==============================

``unstable``: the shadow differed, but so did the primary's own second answer at the
same places (a race with a write, or noise): not a regression, and not in parity.

Labels come from bounded sets only (route names from the config, fixed outcomes and
kinds). Children are bound once per route (``bind``) and pre-initialised at zero, so
a route with shadow shows in ``/metrics`` before its first comparison.

With ``--workers N`` each worker has its own parity gauge (a ``pid`` label); the
ratio over all workers is PromQL over the counters::

    sum by (route) (rate(strangler_shadow_requests_total{outcome="match"}[5m]))
    / sum by (route) (rate(strangler_shadow_requests_total{outcome=~"match|mismatch"}[5m]))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from strangler.shadow.compare import Kind

__all__ = ["KINDS", "OUTCOMES", "SHADOW_BUCKETS", "RouteShadowMetrics", "ShadowMetrics"]

OUTCOMES: Final = ("match", "mismatch", "unstable", "error", "dropped")
KINDS: Final[tuple[Kind, ...]] = ("status", "header", "body")
# Seconds: a shadow upstream may be slower than the proxied path (1 ms .. 30 s).
SHADOW_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RouteShadowMetrics:
    """One route's pre-labelled children."""

    match: Counter
    mismatch: Counter
    unstable: Counter
    error: Counter
    dropped: Counter
    kinds: Mapping[Kind, Counter]
    duration: Histogram
    parity: Gauge
    noisy: Gauge


class ShadowMetrics:
    """Creates the shadow metrics on ``registry`` (the proxy's ``Metrics.registry``).

    Create it once per process, after ``metrics.enable_multiprocess`` in a worker.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "strangler_shadow_requests",
            "Shadowed requests by route and outcome (match, mismatch, unstable, error, dropped).",
            ("route", "outcome"),
            registry=registry,
        )
        self.mismatches = Counter(
            "strangler_shadow_mismatches",
            "Shadow comparisons that differed, by route and kind (status, header, body).",
            ("route", "kind"),
            registry=registry,
        )
        self.duration = Histogram(
            "strangler_shadow_duration_seconds",
            "Time from sending the shadow request to the shadow answer's last byte.",
            ("route",),
            buckets=SHADOW_BUCKETS,
            registry=registry,
        )
        self.parity = Gauge(
            "strangler_shadow_parity_ratio",
            "Share of a route's shadow comparisons that matched (matches / compared).",
            ("route",),
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.noisy = Gauge(
            "strangler_shadow_noisy_paths",
            "JSON paths of a route that noise learning currently excludes from comparison.",
            ("route",),
            registry=registry,
            multiprocess_mode="liveall",
        )
        self._bound: dict[str, RouteShadowMetrics] = {}

    def bind(self, route: str) -> RouteShadowMetrics:
        """The route's children (made once, then reused)."""
        bound = self._bound.get(route)
        if bound is None:
            c = self.requests
            bound = self._bound[route] = RouteShadowMetrics(
                match=c.labels(route, "match"),
                mismatch=c.labels(route, "mismatch"),
                unstable=c.labels(route, "unstable"),
                error=c.labels(route, "error"),
                dropped=c.labels(route, "dropped"),
                kinds=MappingProxyType({k: self.mismatches.labels(route, k) for k in KINDS}),
                duration=self.duration.labels(route),
                parity=self.parity.labels(route),
                noisy=self.noisy.labels(route),
            )
        return bound
