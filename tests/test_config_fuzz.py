"""Fuzzed configs never make ``strangler check`` or a live reload raise.

The mutator (tests/fuzz_support.py) bends the README's examples and
tests/data/configs out of shape, seeded so a failure reproduces by its case number.
``STRANGLER_FUZZ_CASES`` sets how many cases the check test runs (default 2,000, a
few seconds); tests/bench/fuzz_config.py runs 10,000 and more.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import pytest

from tests.conftest import Upstream
from tests.fuzz_support import cases, check_text, through_reload

CASES = int(os.environ.get("STRANGLER_FUZZ_CASES", "2000"))
RELOAD_CASES = 150


def test_fuzzed_configs_never_raise_in_check() -> None:
    failures: list[str] = []
    for case in cases(CASES, seed=20261203):
        try:
            check_text(case.text, case.file)
        except Exception as err:
            where = traceback.format_exception(err)[-2].strip().splitlines()[0]
            failures.append(f"case {case.number} (from {case.seed}): {err!r} at {where}")
    assert failures == [], f"{len(failures)} of {CASES} cases raised:\n" + "\n".join(failures[:10])


async def test_fuzzed_configs_through_live_reload(tmp_path: Path, legacy: Upstream) -> None:
    """Every mutated config reloads as applied, unchanged or rejected, and the proxy
    keeps answering on the old or the new config. The mild cases (``cases(mild=)``)
    keep valid configs in the mix, so swaps happen between the rejections."""
    run = await through_reload(tmp_path, legacy.url, RELOAD_CASES, seed=7)
    assert run.failures == []
    assert run.results["rejected"] > RELOAD_CASES // 2  # the mutator does break configs
    assert run.results["applied"] > RELOAD_CASES // 20  # and its mild cases keep some valid
    assert run.rejected_metric == run.results["rejected"]
    assert (run.final_status, run.final_served_by) == (200, "legacy")


@pytest.mark.parametrize("seed", range(3))
def test_the_mutator_is_reproducible(seed: int) -> None:
    assert [c.text for c in cases(20, seed)] == [c.text for c in cases(20, seed)]
