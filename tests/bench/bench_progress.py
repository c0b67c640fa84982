"""``ProgressTracker.record`` micro-benchmark: ns per call on the request path.

A script, not a pytest test: ``python tests/bench/bench_progress.py [--calls N]``.
Prints one row per request kind (best of 5 rounds, each ``--calls`` calls):

- routed, answered by a new service: counter lookup and increments;
- routed, answered by legacy: the same plus a clock read;
- unrouted, path in the memo: plus the template memo and a Space-Saving hit;
- unrouted, new ids every call (the memo misses): plus folding the path;
- unrouted, churn past the table's capacity: plus Space-Saving evictions.

The budget is well under 2,000 ns for routed requests.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable

from strangler.config import load_config_text
from strangler.metrics import Metrics
from strangler.progress import ProgressTracker
from strangler.runtime import CompiledRoute, compile_snapshot

CONFIG = """
upstreams:
  legacy: http://127.0.0.1:8000
  billing: http://127.0.0.1:9000
routes:
  - {name: invoices-read, owner: team-billing, match: {path: "/api/invoices/{id:int}"}, to: billing}
  - {name: customers, owner: team-crm, match: {path_prefix: /api/customers}, to: legacy}
"""


def bench(label: str, calls: int, fn: Callable[[int], None]) -> tuple[str, float]:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter_ns()
        fn(calls)
        best = min(best, (time.perf_counter_ns() - started) / calls)
    return label, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    snap = compile_snapshot(load_config_text(CONFIG), Metrics())
    new_route, legacy_route = snap.routes
    unrouted = snap.unrouted

    def loop(
        route: CompiledRoute, paths: list[str], tracker: ProgressTracker
    ) -> Callable[[int], None]:
        record = tracker.record

        def run(n: int) -> None:
            it = itertools.cycle(paths)
            for _ in range(n):
                record(route.name, route.target, "GET", next(it), 200)

        return run

    def fresh() -> ProgressTracker:
        return ProgressTracker()

    baseline_paths = ["/api/invoices/1"]

    def empty(n: int) -> None:  # the loop's own cost, subtracted below
        it = itertools.cycle(baseline_paths)
        for _ in range(n):
            next(it)

    hot = [f"/api/orders/{i}" for i in range(100)]
    unique = [f"/api/orders/{i}/items/{i * 7}" for i in range(args.calls)]
    churn = [f"/w{i}/page" for i in range(args.calls)]  # each its own endpoint
    rows = [
        bench("loop overhead (subtracted)", args.calls, empty),
        bench("routed, new service", args.calls, loop(new_route, baseline_paths, fresh())),
        bench("routed, legacy", args.calls, loop(legacy_route, baseline_paths, fresh())),
        bench("unrouted, memo hit", args.calls, loop(unrouted, hot, fresh())),
        bench("unrouted, memo miss (fold)", args.calls, loop(unrouted, unique, fresh())),
        bench("unrouted, top-K churn", args.calls, loop(unrouted, churn, fresh())),
    ]
    overhead = rows[0][1]
    print(f"{'request kind':<30} {'ns/call':>8}")
    for label, ns in rows[1:]:
        print(f"{label:<30} {ns - overhead:>8.0f}")


if __name__ == "__main__":
    main()
