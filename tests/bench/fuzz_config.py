"""Config fuzzing at scale: 10,000 mutated configs through what ``strangler check`` runs.

Not a test (tests/test_config_fuzz.py runs a few thousand in the suite). Run it with
``python tests/bench/fuzz_config.py [--cases 10000] [--seed 1] [--reload 1000]`` from
the repository root; it prints how many configs were ok, rejected with problems, and
raised (each raising case with its number, so ``--seed S`` plus the number reproduces
it), and exits 1 when any raised. The goal is 0. ``--reload N`` also sends N of them
through a running server's ``ProxyServer.reload()`` (each must end applied, unchanged
or rejected, the admin API answering after each).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz_support import cases, check_text, through_reload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reload", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)
    counts: collections.Counter[str] = collections.Counter()
    raised: list[str] = []
    started = time.perf_counter()
    for case in cases(args.cases, args.seed):
        try:
            counts["ok" if check_text(case.text, case.file) else "rejected"] += 1
        except Exception as err:
            counts["raised"] += 1
            where = traceback.format_exception(err)[-2].strip().splitlines()[0]
            raised.append(f"  case {case.number} (from {case.seed}): {err!r} at {where}")
    seconds = time.perf_counter() - started
    print(f"{args.cases} cases, seed {args.seed}, {seconds:.1f} s")
    for outcome in ("ok", "rejected", "raised"):
        print(f"  {outcome:<9} {counts[outcome]:>7}")
    print("\n".join(raised[:50]))
    failures: list[str] = []
    if args.reload:
        logging.getLogger("strangler").setLevel(logging.CRITICAL)  # each rejection logs it
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as work:
            # legacy on the discard port: the reloads are under test, not the answers
            run = asyncio.run(
                through_reload(Path(work), "http://127.0.0.1:9", args.reload, args.seed)
            )
        failures = run.failures
        print(f"{args.reload} live reloads, {time.perf_counter() - started:.1f} s")
        for outcome in ("applied", "unchanged", "rejected"):
            print(f"  {outcome:<9} {run.results[outcome]:>7}")
        print(f"  failed    {len(failures):>7}")
        print("\n".join(f"  {f}" for f in failures[:50]))
    return 1 if raised or failures else 0


if __name__ == "__main__":
    sys.exit(main())
