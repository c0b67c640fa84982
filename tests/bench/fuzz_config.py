"""Config fuzzing at scale: 10,000 mutated configs through what ``strangler check`` runs.

Not a test (tests/test_config_fuzz.py runs a few thousand in the suite). Run it with
``python tests/bench/fuzz_config.py [--cases 10000] [--seed 1]`` from the repository
root; it prints how many configs were ok, rejected with problems, and raised (each
raising case with its number, so ``--seed S`` plus the number reproduces it), and
exits 1 when any raised. The goal is 0.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz_support import cases, check_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
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
    return 1 if raised else 0


if __name__ == "__main__":
    sys.exit(main())
