"""Scrape-time metrics of the autopilot, read from the shared state files, so every
worker reports the same (never summed across workers).

``strangler_migration_stage{route}``: the position's index in the plan (0 = first
stage; the plan's length = done; -1 = aborted, back on the primary), with
``strangler_migration_stage_info{route,position,status}`` = 1 naming it;
``strangler_migration_share{route}``: the share the plan holds the route at;
``strangler_migration_gate{route,gate}``: 1 passing, 0 failing, -1 waiting for traffic
(as of the last evaluation); ``strangler_migration_figure{route,figure}``: that
evaluation's window figures (error ratios, p99s, parity, counts);
``strangler_migration_in_stage_seconds{route}``.
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
        figure = GaugeMetricFamily(
            "strangler_migration_figure",
            "The last evaluation's window figures of a route's plan: new_error_ratio, "
            "primary_error_ratio, new_p99_seconds, primary_p99_seconds, parity, compared, "
            "new_requests, primary_requests, fallbacks, budget_left (absent: unknown).",
            labels=("route", "figure"),
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
            for name_, value in _figures(v.get("figures")).items():
                figure.add_metric([name, name_], value)
            gates = v.get("gates")
            if isinstance(gates, list):
                for g in gates:
                    if isinstance(g, dict) and g.get("verdict") in _VERDICT:
                        gate.add_metric([name, str(g["name"])], _VERDICT[str(g["verdict"])])
        yield from (stage, info, share, gate, figure, elapsed)


def _figures(raw: object) -> dict[str, float]:
    """The figures worth a gauge, from a view's ``figures`` (ratios computed here)."""
    if not isinstance(raw, dict):
        return {}

    def num(key: str) -> float | None:
        value = raw.get(key)
        return float(value) if isinstance(value, int | float) else None

    out: dict[str, float | None] = {
        "new_requests": num("new_requests"),
        "primary_requests": num("primary_requests"),
        "new_p99_seconds": num("new_p99"),
        "primary_p99_seconds": num("primary_p99"),
        "parity": num("parity"),
        "compared": num("compared"),
        "fallbacks": num("fallbacks"),
        "budget_left": num("budget_left"),
    }
    for side in ("new", "primary"):
        requests, errors = num(f"{side}_requests"), num(f"{side}_errors")
        if requests and errors is not None:
            out[f"{side}_error_ratio"] = errors / requests
    return {k: v for k, v in out.items() if v is not None}
