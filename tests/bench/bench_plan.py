"""``strangler plan`` throughput: log lines per second, read and replayed, on one core.

A script, not a pytest test: ``python tests/bench/bench_plan.py [--lines N]``.
Writes N-line logs to a temporary directory (strangler's JSON access log and an
nginx combined log, each with few distinct requests, as a real log has, and with
every request distinct, the worst case) and times ``read_sources`` and ``plan`` over
them with a 40-route config (the proposed one adds a catch-all). Prints one row per
log, in CPU seconds of the process (the machine may be shared), and the wall time;
the target is 1,000,000 lines in well under a minute.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from strangler.config import load_config_text
from strangler.plan.replay import plan
from strangler.plan.traffic import read_sources

TEAMS = ("billing", "users", "orders", "reports", "search")


def config(extra: str = "") -> str:
    routes = []
    for i in range(40):
        team = TEAMS[i % len(TEAMS)]
        if i % 2:
            match = f'{{path: "/api/{team}{i}/{{id:int}}", methods: [GET]}}'
        else:
            match = f"{{path_prefix: /api/{team}{i}}}"
        routes.append(f"  - {{name: r{i}, owner: team-{team}, match: {match}, to: svc}}")
    return (
        "upstreams: {legacy: http://127.0.0.1:8000, svc: http://127.0.0.1:9000}\nroutes:\n"
        + "\n".join(routes)
        + "\n"
        + extra
    )


PROPOSED_EXTRA = "  - {name: catch-all, owner: team-x, match: {path_prefix: /api}, to: svc}\n"


def paths(rng: random.Random, distinct: bool) -> Callable[[int], tuple[str, str]]:
    ids = 1 << 30 if distinct else 50

    def one(n: int) -> tuple[str, str]:
        i = rng.randrange(50)
        team = TEAMS[i % len(TEAMS)]
        if i >= 40:
            return "GET", f"/legacy/page{i}/{rng.randrange(ids)}"
        method = "GET" if n % 5 else "POST"
        return method, f"/api/{team}{i}/{rng.randrange(ids)}"

    return one


def write_json(path: Path, n: int, gen: Callable[[int], tuple[str, str]]) -> None:
    with path.open("w") as f:
        for k in range(n):
            method, p = gen(k)
            f.write(
                f'{{"time": "2026-12-03T10:00:00.000Z", "method": "{method}", "path": "{p}", '
                f'"route": "r1", "backend": "svc", "status": 200, "bytes": 512, '
                f'"duration_ms": 1.234, "client": "10.0.0.1"}}\n'
            )


def write_combined(path: Path, n: int, gen: Callable[[int], tuple[str, str]]) -> None:
    with path.open("w") as f:
        for k in range(n):
            method, p = gen(k)
            f.write(
                f'10.0.0.1 - - [03/Dec/2026:10:00:00 +0000] "{method} {p}?page={k % 3} '
                f'HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11; Linux x86_64)"\n'
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    current, proposed = load_config_text(config()), load_config_text(config(PROPOSED_EXTRA))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, writer, distinct in (
            ("strangler JSON, 1.5k distinct", write_json, False),
            ("strangler JSON, all distinct", write_json, True),
            ("nginx combined, 4.5k distinct", write_combined, False),
            ("nginx combined, all distinct", write_combined, True),
        ):
            log = Path(tmp) / "access.log"
            writer(log, args.lines, paths(random.Random(7), distinct))
            started, wall = time.process_time(), time.perf_counter()
            traffic = read_sources([str(log)])
            read = time.process_time() - started
            result = plan(current, proposed, traffic)
            total = time.process_time() - started
            wall = time.perf_counter() - wall
            assert result.requests == args.lines, (result.requests, args.lines)
            rows.append((name, len(traffic.counts), read, total - read, total, wall))
    print("CPU seconds of this process (one core); wall clock for reference.")
    title = f"log ({args.lines:,} lines)"
    print(
        f"{title:<32} {'distinct':>10} {'read s':>8} {'replay s':>9} {'total s':>8} "
        f"{'lines/s':>10} {'wall s':>7}"
    )
    for name, distinct_n, read, replay, total, wall in rows:
        print(
            f"{name:<32} {distinct_n:>10,} {read:>8.2f} {replay:>9.2f} {total:>8.2f} "
            f"{args.lines / total:>10,.0f} {wall:>7.1f}"
        )


if __name__ == "__main__":
    main()
