"""What the per-request bookkeeping costs: ns per call of each piece the pipeline runs
for every answered request (metric children bound at compile time, decision counter,
progress tracker), and all of them together. A script, not a test:

    python tests/bench/bench_metrics.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

from strangler.config import load_config_text
from strangler.metrics import Metrics
from strangler.progress import ProgressTracker
from strangler.runtime import SnapshotHolder, compile_snapshot

CONFIG = """
upstreams: {legacy: http://127.0.0.1:1, billing: http://127.0.0.1:2}
routes:
  - {name: inv, owner: t, match: {path_prefix: /inv}, to: billing}
"""
N = 200_000


def per_call(fn: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _ in range(N):
            fn()
        best = min(best, (time.perf_counter_ns() - t0) / N)
    return best


def main() -> None:
    metrics = Metrics()
    snap = compile_snapshot(load_config_text(CONFIG), metrics)
    route = snap.routes[0]
    side = route.default
    tracker = ProgressTracker(SnapshotHolder(snap))
    decision = route.decisions["primary"]
    empty = per_call(lambda: None)
    rows = [
        (
            "RouteMetrics.record (counter + histogram + bytes)",
            lambda: side.metrics.record(200, 0.004, 200, False),
        ),
        ("decision counter inc", decision.inc),
        (
            "ProgressTracker.record (routed)",
            lambda: tracker.record("inv", "new", "GET", "/inv/1", 200),
        ),
    ]

    def everything() -> None:
        side.metrics.record(200, 0.004, 200, False)
        decision.inc()
        tracker.record("inv", "new", "GET", "/inv/1", 200)

    rows.append(("all per-request bookkeeping", everything))
    print("| bookkeeping | ns per request |\n|---|---|")
    for name, fn in rows:
        print(f"| {name} | {per_call(fn) - empty:,.0f} |")


if __name__ == "__main__":
    main()
