"""SLO guard: sliding window, min_requests, exact p99 breach test, budget, trips. No sleeps:
every guard runs on a fake clock."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

from strangler.config.model import Slo
from strangler.release import Guards, GuardVerdict, RuntimeState, SloGuard, Trip
from strangler.release.guard import BOUNDS, SLOTS
from strangler.release.windows import SharedWindows, window_key


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def guard_for(slo: Slo, clock: Clock | None = None) -> tuple[SloGuard, Clock]:
    clock = clock or Clock()
    return SloGuard(slo, clock), clock


def feed(guard: SloGuard, n: int, *, ok: bool = True, latency: float = 0.01) -> None:
    for _ in range(n):
        guard.observe(ok, latency)


def test_doctests() -> None:
    assert doctest.testmod(importlib.import_module("strangler.release.guard")).failed == 0


# ---------------------------------------------------------------------------- judging


def test_nothing_is_judged_below_min_requests() -> None:
    guard, _ = guard_for(Slo(error_rate=0.01, min_requests=100))
    feed(guard, 99, ok=False)
    verdict = guard.evaluate()
    assert (verdict.requests, verdict.errors, verdict.enough, verdict.breached) == (
        99,
        99,
        False,
        False,
    )
    assert verdict.reason is None
    feed(guard, 1, ok=False)
    assert guard.evaluate().breached


def test_error_rate_at_the_limit_holds_above_it_breaches() -> None:
    guard, _ = guard_for(Slo(error_rate=0.01, min_requests=100))
    feed(guard, 99)
    feed(guard, 1, ok=False)
    at_limit = guard.evaluate()
    assert at_limit.error_ratio == pytest.approx(0.01)
    assert not at_limit.breached
    assert at_limit.budget_remaining == pytest.approx(0.0)
    feed(guard, 1, ok=False)
    over = guard.evaluate()
    assert over.breached
    assert over.reason == ("error rate 1.98% over the last 5m exceeds 1% (2 of 101 answers failed)")


def test_p99_breaches_exactly_when_more_than_one_percent_are_slower() -> None:
    guard, _ = guard_for(Slo(latency_p99=0.3, min_requests=100))
    feed(guard, 99, latency=0.05)
    feed(guard, 1, latency=0.8)  # 1% slower: the 99th percentile is still 0.05
    verdict = guard.evaluate()
    assert (verdict.slow, verdict.breached) == (1, False)
    assert verdict.p99 is not None
    assert 0.05 <= verdict.p99 <= 0.05 * 1.5  # an estimate: the bin's upper bound
    feed(guard, 1, latency=0.30001)  # 2 of 101 slower
    verdict = guard.evaluate()
    assert (verdict.slow, verdict.breached) == (2, True)
    assert verdict.reason is not None
    assert verdict.reason.startswith(
        "p99 latency over the last 5m exceeds 300ms (2 of 101 answers slower, p99 ≈ "
    )
    assert verdict.budget_remaining is None  # no error_rate in this SLO


def test_a_latency_equal_to_the_target_is_not_slower() -> None:
    guard, _ = guard_for(Slo(latency_p99=0.3, min_requests=10))
    feed(guard, 50, latency=0.3)
    assert guard.evaluate().slow == 0


def test_both_targets_can_breach_at_once() -> None:
    guard, _ = guard_for(Slo(error_rate=0.05, latency_p99=0.1, min_requests=10, window=60.0))
    feed(guard, 10, ok=False, latency=1.0)
    verdict = guard.evaluate()
    assert verdict.reason is not None
    assert verdict.reason.count(";") == 1
    assert "error rate 100% over the last 1m exceeds 5%" in verdict.reason
    assert "p99 latency over the last 1m exceeds 100ms (10 of 10 answers slower" in verdict.reason


def test_errors_without_an_error_target_never_trip() -> None:
    guard, _ = guard_for(Slo(latency_p99=1.0, min_requests=1))
    feed(guard, 100, ok=False, latency=0.01)
    assert not guard.evaluate().breached


# ---------------------------------------------------------------------------- the window


def test_answers_age_out_of_the_window() -> None:
    guard, clock = guard_for(Slo(error_rate=0.01, window=60.0, min_requests=1), Clock(0.0))
    feed(guard, 10, ok=False)  # at t=0, slot tick 0
    clock.now = 30.0
    feed(guard, 5)
    assert guard.evaluate().requests == 15
    clock.now = 59.999  # tick 59: tick 0 is the oldest slot still inside
    assert guard.evaluate().requests == 15
    clock.now = 60.0  # tick 60: tick 0 has left the window
    verdict = guard.evaluate()
    assert (verdict.requests, verdict.errors) == (5, 0)
    assert guard.evaluate(now=89.999).requests == 5
    assert guard.evaluate(now=90.0).requests == 0


def test_the_ring_reuses_a_slot_without_leaking_old_counts() -> None:
    guard, clock = guard_for(Slo(error_rate=0.5, window=60.0, min_requests=1), Clock(0.0))
    feed(guard, 7, ok=False, latency=5.0)
    clock.now = 60.5  # the same slot index, one lap later
    feed(guard, 2, latency=0.002)
    verdict = guard.evaluate()
    assert (verdict.requests, verdict.errors, verdict.slow) == (2, 0, 0)
    assert verdict.p99 == pytest.approx(0.002)  # the slow old answers are gone from the histogram


def test_a_long_silence_empties_the_window() -> None:
    guard, clock = guard_for(Slo(error_rate=0.01, window=300.0, min_requests=1))
    feed(guard, 50, ok=False)
    clock.now += 10_000
    verdict = guard.evaluate()
    assert verdict == GuardVerdict(
        requests=0,
        errors=0,
        slow=0,
        error_ratio=0.0,
        slow_ratio=0.0,
        p99=None,
        enough=False,
        breached=False,
        reason=None,
        budget_remaining=1.0,
    )


def test_the_window_spreads_over_sixty_slots() -> None:
    guard, clock = guard_for(Slo(error_rate=0.5, window=120.0, min_requests=1), Clock(0.0))
    for second in range(0, 120, 2):  # one answer per 2s slot
        clock.now = float(second)
        guard.observe(True, 0.01)
    assert SLOTS == 60
    assert guard.evaluate().requests == 60
    clock.now = 120.0
    assert guard.evaluate().requests == 59


def test_reset_forgets_everything() -> None:
    guard, _ = guard_for(Slo(error_rate=0.01, min_requests=1))
    feed(guard, 10, ok=False)
    guard.reset()
    assert guard.evaluate().requests == 0
    feed(guard, 1)
    assert guard.evaluate().requests == 1


# ---------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(("errors", "budget"), [(0, 1.0), (25, 0.5), (50, 0.0), (100, 0.0)])
def test_error_budget_remaining(errors: int, budget: float) -> None:
    guard, _ = guard_for(Slo(error_rate=0.01, min_requests=1))
    feed(guard, 5000 - errors)
    feed(guard, errors, ok=False)
    assert guard.evaluate().budget_remaining == pytest.approx(budget)


def test_p99_estimate_is_within_one_bin() -> None:
    guard, _ = guard_for(Slo(latency_p99=10.0, min_requests=1))
    for n in range(1, 1001):
        guard.observe(True, n / 1000)  # 1ms .. 1s, evenly
    p99 = guard.evaluate().p99
    assert p99 is not None
    assert 0.99 <= p99 <= 0.99 * 1.5


def test_p99_beyond_the_last_bin_is_the_slowest_answer() -> None:
    guard, _ = guard_for(Slo(latency_p99=1.0, min_requests=1))
    feed(guard, 10, latency=BOUNDS[-1] * 3)
    assert guard.evaluate().p99 == pytest.approx(BOUNDS[-1] * 3)


def test_verdict_as_dict() -> None:
    guard, _ = guard_for(Slo(error_rate=0.1, min_requests=1))
    feed(guard, 3)
    feed(guard, 1, ok=False)
    assert guard.evaluate().as_dict() == {
        "requests": 4,
        "errors": 1,
        "slow": 0,
        "error_ratio": 0.25,
        "slow_ratio": 0.0,
        "p99": pytest.approx(0.01),
        "enough": True,
        "breached": True,
        "reason": "error rate 25% over the last 5m exceeds 10% (1 of 4 answers failed)",
        "budget_remaining": 0.0,
    }


def test_a_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window must be more than 0"):
        SloGuard(Slo(error_rate=0.1, window=0.0), Clock())


# ---------------------------------------------------------------------------- Guards


def test_guards_reconcile_keeps_windows_of_unchanged_slos() -> None:
    clock = Clock()
    guards = Guards(clock)
    slo = Slo(error_rate=0.01)
    guards.reconcile({"a": slo, "b": Slo(latency_p99=1.0), "c": None})
    a, b = guards.get("a"), guards.get("b")
    assert a is not None
    assert b is not None
    assert guards.get("c") is None
    assert len(guards) == 2
    a.observe(False, 0.1)
    guards.reconcile({"a": Slo(error_rate=0.01), "b": Slo(latency_p99=2.0), "d": slo})
    assert guards.get("a") is a  # equal SLO: same window
    assert a.evaluate().requests == 1
    assert guards.get("b") is not b  # changed SLO: new window
    assert guards.get("d") is not None
    guards.reconcile({})
    assert len(guards) == 0


def test_check_trips_breached_routes_once() -> None:
    clock = Clock()
    guards = Guards(clock)
    guards.reconcile({"a": Slo(error_rate=0.01, min_requests=10), "b": Slo(error_rate=0.5)})
    state = RuntimeState()
    assert guards.check(state, now=clock.now, wall=1.7e9) == []
    ga = guards.get("a")
    assert ga is not None
    feed(ga, 10, ok=False)
    (trip,) = guards.check(state, now=clock.now, wall=1.7e9)
    assert isinstance(trip, Trip)
    assert trip.route == "a"
    assert trip.verdict.breached
    route_state = state.for_route("a")
    assert route_state.guard_tripped
    assert route_state.guard_reason == trip.verdict.reason
    assert route_state.since == 1.7e9
    assert not state.for_route("b").guard_tripped
    assert guards.check(state, now=clock.now, wall=1.8e9) == []  # already tripped
    assert route_state.since == 1.7e9
    # an operator resets: state and window both start afresh
    route_state.reset_guard(at=1.9e9)
    guards.reset("a")
    assert guards.check(state, now=clock.now, wall=2e9) == []
    assert set(guards.verdicts()) == {"a", "b"}


# ---------------------------------------------------------------------------- workers


def test_workers_sharing_a_directory_judge_one_window(tmp_path: Path) -> None:
    """Two workers (two ``SharedWindows`` with their own pids, one directory): each
    counts into its own file and judges the sum; a reset in one forgets both."""
    clock = Clock()
    one, two = SharedWindows(tmp_path), SharedWindows(tmp_path)
    two.pid = one.pid + 1  # another worker of the host
    slo = Slo(error_rate=0.1, min_requests=30, window=60.0, latency_p99=0.5)
    a = SloGuard(slo, clock, shared=one, route="r")
    b = SloGuard(slo, clock, shared=two, route="r")
    feed(a, 20, ok=False, latency=0.01)
    feed(b, 15, latency=0.9)
    for guard in (a, b):
        verdict = guard.evaluate()
        assert (verdict.requests, verdict.errors, verdict.slow) == (35, 20, 15)
        assert verdict.breached  # neither worker alone has min_requests
        assert verdict.p99 == pytest.approx(0.9)  # the slowest answer, in the other file
    # Another route, or the same route under another SLO, is another window.
    other = SloGuard(
        Slo(error_rate=0.2, min_requests=30, window=60.0), clock, shared=one, route="r"
    )
    assert other.evaluate().requests == 0
    assert SloGuard(slo, clock, shared=one, route="s").evaluate().requests == 0
    # An operator's enable in worker two forgets worker one's answers too.
    b.reset()
    assert a.evaluate().requests == b.evaluate().requests == 0
    clock.now += 60.0 / SLOTS  # the next slot: answers count again
    feed(a, 1)
    assert b.evaluate().requests == 1
    # A guard that goes (route removed, SLO changed) takes its file; a dead worker's
    # file still counts for what that worker answered within the window.
    other.close()
    assert not any(p.name.startswith(window_key("r", other.slo)) for p in tmp_path.iterdir())
    del a
    assert b.evaluate().requests == 1


def test_guards_in_a_directory_keep_and_drop_windows_on_reload(tmp_path: Path) -> None:
    clock = Clock()
    guards = Guards(clock, tmp_path)
    slo = Slo(error_rate=0.1, min_requests=10)
    guards.reconcile({"a": slo, "b": slo})
    first = guards.get("a")
    assert first is not None
    feed(first, 5)
    guards.reconcile({"a": slo})  # b removed: its file goes; a kept, window and all
    assert guards.get("a") is first
    assert guards.verdicts()["a"].requests == 5
    assert sorted(p.name.split(".")[0] for p in tmp_path.glob("*.ring")) == [window_key("a", slo)]
