"""Scrape-time metrics of the autopilot, read from the shared state files, so every
worker reports the same (never summed across workers).

``strangler_migration_stage{route}``: the position's index in the plan (0 = first
stage; the plan's length = done; -1 = aborted, back on the primary), with
``strangler_migration_stage_info{route,position,status}`` = 1 naming it;
``strangler_migration_share{route}``: the share the plan holds the route at;
``strangler_migration_gate{route,gate}``: 1 passing, 0 failing, -1 waiting for traffic
(as of the last evaluation); ``strangler_migration_in_stage_seconds{route}``.
Transitions are counted by the evaluating process in
``strangler_migration_transitions_total{route,from,to,reason}`` (``strangler.metrics``).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from strangler.migrate.runner import Autopilot

_VERDICT = {"pass": 1.0, "fail": 0.0, "waiting": -1.0}


class MigrationCollector:
    def __init__(self, pilot: Autopilot) -> None:
        self.pilot = pilot

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        views = self.pilot.views()
        stage = GaugeMetricFamily(
            "strangler_migration_stage",
            "The autopilot's position in a route's plan (stage index; -1 aborted).",
            labels=("route",),
        )
        info = GaugeMetricFamily(
            "strangler_migration_stage_info",
            "1 for the autopilot's current position and status of a route's plan.",
            labels=("route", "position", "status"),
        )
        share = GaugeMetricFamily(
            "strangler_migration_share",
            "The canary share the autopilot holds a route at (ratio).",
            labels=("route",),
        )
        gate = GaugeMetricFamily(
            "strangler_migration_gate",
            "A gate of a route's plan: 1 passing, 0 failing, -1 waiting for traffic.",
            labels=("route", "gate"),
        )
        elapsed = GaugeMetricFamily(
            "strangler_migration_in_stage_seconds",
            "Seconds since the route's current window (stage step) began.",
            labels=("route",),
        )
        for name, v in views.items():
            if "stage" not in v:
                continue
            status = str(v["status"])
            index = -1.0 if status == "aborted" else float(str(v["stage"]))
            stage.add_metric([name], index)
            info.add_metric([name, str(v["position"]), status], 1.0)
            share.add_metric([name], float(str(v["share"])))
            elapsed.add_metric([name], float(str(v["in_stage_seconds"])))
            gates = v.get("gates")
            if isinstance(gates, list):
                for g in gates:
                    if isinstance(g, dict) and g.get("verdict") in _VERDICT:
                        gate.add_metric([name, str(g["name"])], _VERDICT[str(g["verdict"])])
        yield from (stage, info, share, gate, elapsed)
