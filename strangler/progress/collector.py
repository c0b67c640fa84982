"""Prometheus metrics of migration progress, computed at scrape time.

=============================================== ===== =========================================
metric                                          type  meaning
=============================================== ===== =========================================
``strangler_routes{state}``                     gauge routes per state (legacy/canary/migrated)
``strangler_route_migrated{route}``             gauge 1 when the route's traffic goes to a new
                                                      service, else 0
``strangler_route_decommission_candidate{route}`` gauge 1 when legacy has been idle on the route
                                                      for ``idle_after`` (see ``status``)
``strangler_legacy_endpoints_tracked``          gauge learned legacy endpoints (all workers)
=============================================== ===== =========================================

Labels come from the config's route names only. A scrape costs O(routes x workers)
plus a set union of at most ``workers x max_endpoints`` keys; it reads no file (the
other workers' states are the ones the flusher last read), so every worker answers
the same figures up to one flush interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import final

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from strangler.progress.state import ProgressState, merge_states
from strangler.progress.status import route_rows
from strangler.progress.tracker import ProgressTracker
from strangler.runtime import SnapshotHolder

__all__ = ["ProgressCollector"]

_STATES = ("legacy", "canary", "migrated")


@final
class ProgressCollector(Collector):
    """Register with ``metrics.registry.register(ProgressCollector(tracker, holder))``."""

    def __init__(self, tracker: ProgressTracker, holder: SnapshotHolder) -> None:
        self._tracker = tracker
        self._holder = holder

    def describe(self) -> Iterable[Metric]:
        # Names only, so registering never runs a collection.
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        routes, migrated, candidate, tracked = self._families()
        snap = self._holder.current
        tracker = self._tracker
        tracker.reconcile(snap)
        peers = tracker.peers
        counts = merge_states(
            [
                ProgressState(routes=tracker.route_counts()),
                *(ProgressState(routes=p.routes) for p in peers),
            ]
        ).routes
        rows = route_rows(counts, snap, tracker.now(), tracker.idle_after)
        by_state = dict.fromkeys(_STATES, 0)
        for row in rows:
            by_state[row["state"]] += 1
            migrated.add_metric([row["name"]], 1.0 if row["state"] == "migrated" else 0.0)
            candidate.add_metric([row["name"]], 1.0 if row["decommission_candidate"] else 0.0)
        for state, n in by_state.items():
            routes.add_metric([state], float(n))
        keys = tracker.endpoint_keys.union(*(p.endpoints for p in peers))
        capacity = max([tracker.capacity, *(p.capacity for p in peers)])
        tracked.add_metric([], float(min(len(keys), capacity)))  # the merged table's size
        return [routes, migrated, candidate, tracked]

    @staticmethod
    def _families() -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "strangler_routes", "Routes by migration state, from the config.", labels=["state"]
        )
        yield GaugeMetricFamily(
            "strangler_route_migrated",
            "1 when the route's traffic goes to a new service, else 0.",
            labels=["route"],
        )
        yield GaugeMetricFamily(
            "strangler_route_decommission_candidate",
            "1 when legacy has not answered the route for the idle period, else 0.",
            labels=["route"],
        )
        yield GaugeMetricFamily(
            "strangler_legacy_endpoints_tracked",
            "Learned legacy endpoints (unrouted traffic) in the bounded top-K table.",
        )
