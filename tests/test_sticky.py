"""Sticky cohorts: stable, uniform, monotonic buckets; per-salt independence; fractions."""

from __future__ import annotations

import doctest
import itertools
import math
import os
import subprocess
import sys

import pytest

from strangler.release import sticky
from strangler.release.sticky import BUCKETS, Cohorts, bucket, cutoff, in_canary

KEYS = [f"user-{n}" for n in range(100_000)]


@pytest.fixture(scope="module")
def buckets() -> list[int]:
    cohorts = Cohorts("invoices-read")
    return [cohorts(key) for key in KEYS]


def test_doctests() -> None:
    assert doctest.testmod(sticky).failed == 0


# ---------------------------------------------------------------------------- stability


def test_known_values_never_change() -> None:
    # Changing these moves every user to another cohort on upgrade: never do it lightly.
    assert bucket("user-42", "checkout") == 1395
    assert bucket("", "x") == 9997
    assert bucket("user-1", "invoices-read") == 8540


def test_same_in_another_process_with_another_hash_seed() -> None:
    code = (
        "from strangler.release.sticky import bucket;"
        "print([bucket(f'user-{n}', 'checkout') for n in range(50)])"
    )
    runs = set()
    for seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        runs.add(out.stdout)
    assert runs == {str([bucket(f"user-{n}", "checkout") for n in range(50)]) + "\n"}


def test_cohorts_object_matches_the_function() -> None:
    cohorts = Cohorts("g")
    assert [cohorts(k) for k in KEYS[:1000]] == [bucket(k, "g") for k in KEYS[:1000]]
    assert cohorts("a") == cohorts("a")  # the salted base is not consumed by a call


def test_any_string_hashes() -> None:
    for key in ("", "ü", "日本", "\udcff-undecodable", "x" * 10_000):
        assert 0 <= bucket(key, "r") < BUCKETS


def test_salt_and_key_do_not_run_together() -> None:
    # The salt is length-prefixed: ("ab", "c") and ("a", "bc") hash different bytes.
    assert [bucket("c", "ab"), bucket("bc", "a")] == [9016, 8844]


# ---------------------------------------------------------------------------- distribution


def test_buckets_are_uniform(buckets: list[int]) -> None:
    assert min(buckets) >= 0
    assert max(buckets) < BUCKETS
    # 100 groups of 100 buckets, 1,000 keys expected in each: chi-square, 99 dof.
    counts = [0] * 100
    for b in buckets:
        counts[b // 100] += 1
    chi2 = sum((c - 1000) ** 2 / 1000 for c in counts)
    assert chi2 < 150  # p ≈ 0.0007 for 99 degrees of freedom


@pytest.mark.parametrize("ratio", [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.9, 0.999])
def test_share_in_the_canary_matches_the_percentage(buckets: list[int], ratio: float) -> None:
    n = len(buckets)
    inside = sum(in_canary(b, ratio) for b in buckets)
    sigma = math.sqrt(n * ratio * (1 - ratio))
    assert abs(inside - n * ratio) <= 5 * sigma, (inside, n * ratio)


def test_zero_and_all(buckets: list[int]) -> None:
    assert not any(in_canary(b, 0.0) for b in buckets)
    assert all(in_canary(b, 1.0) for b in buckets)


# ---------------------------------------------------------------------------- monotonic


def test_raising_the_percentage_only_adds_users(buckets: list[int]) -> None:
    ratios = [0.0, 0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 0.75, 1.0]
    cohorts = [{k for k, b in zip(KEYS, buckets, strict=True) if in_canary(b, r)} for r in ratios]
    for smaller, larger in itertools.pairwise(cohorts):
        assert smaller <= larger
    ten, twenty = cohorts[4], cohorts[5]
    assert ten < twenty  # and it does add someone


def test_cutoff_is_monotonic_and_exact_on_the_grid() -> None:
    previous = -1
    for k in range(BUCKETS + 1):
        # both spellings a config can produce: k/10000 and (k/100)% through units.percent
        assert cutoff(k / BUCKETS) == k
        assert cutoff((k / 100) / 100.0) == k
        assert cutoff(k / BUCKETS) > previous
        previous = cutoff(k / BUCKETS)


# ---------------------------------------------------------------------------- fractions


def test_fractions_of_a_percent(buckets: list[int]) -> None:
    assert cutoff(0.001) == 10  # 0.1%
    assert cutoff(0.0001) == 1  # 0.01%: one bucket
    assert cutoff(0.00005) == 1  # finer than a bucket rounds up, never down to nothing
    inside = sum(in_canary(b, 0.001) for b in buckets)
    assert 50 <= inside <= 150  # 100 expected, sigma 10
    assert in_canary(9, 0.001)
    assert not in_canary(10, 0.001)


def test_cutoff_clamps() -> None:
    assert cutoff(-0.5) == 0
    assert cutoff(1.5) == BUCKETS


# ---------------------------------------------------------------------------- groups


def test_a_group_salt_gives_one_cohort_across_routes() -> None:
    # Two routes in group "checkout" both hash with salt "checkout": same bucket.
    invoices, orders = Cohorts("checkout"), Cohorts("checkout")
    for key in KEYS[:5000]:
        assert in_canary(invoices(key), 0.1) == in_canary(orders(key), 0.1)


def test_unrelated_routes_have_independent_cohorts() -> None:
    a, b = Cohorts("invoices-read"), Cohorts("orders-read")
    both = sum(in_canary(a(k), 0.1) and in_canary(b(k), 0.1) for k in KEYS)
    # independent: 1% of users are in both canaries; the same salt would give 10%
    sigma = math.sqrt(len(KEYS) * 0.01 * 0.99)
    assert abs(both - len(KEYS) * 0.01) <= 5 * sigma
