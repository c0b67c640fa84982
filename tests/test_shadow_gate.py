"""``OutcomeWindow``: parity, compared and unstable over the last N compared and the last
few minutes, with a fake clock."""

from __future__ import annotations

import doctest

import strangler.shadow.gate as gate_module
from strangler.shadow.gate import OutcomeWindow


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def test_doctests() -> None:
    assert doctest.testmod(gate_module).failed == 0


def test_an_empty_window_has_no_parity_and_meets_nothing() -> None:
    g = OutcomeWindow(clock=Clock()).gate()
    assert (g.last.compared, g.last.parity, g.recent.parity) == (0, None, None)
    assert not g.last.meets(0.0, compared=0)
    assert g.as_dict()["last"] == {
        "compared": 0,
        "matches": 0,
        "mismatches": 0,
        "unstable": 0,
        "parity": None,
        "seconds": 0.0,
    }


def test_last_n_compared_rolls_over() -> None:
    """A regression early on leaves the last-N window once enough good answers came;
    the totals since start would remember it forever."""
    clock = Clock()
    w = OutcomeWindow(last=1000, seconds=60.0, clock=clock)
    for _ in range(10):
        w.record("mismatch")
    for i in range(1000):
        w.record("match")
        if i % 100 == 0:
            w.record("unstable")  # never counted as compared, never in parity
        clock.now += 0.01
    g = w.gate()
    assert (g.last.compared, g.last.matches, g.last.unstable) == (1000, 1000, 10)
    assert g.last.meets(0.999, compared=1000)
    assert round(g.last.seconds, 2) == 10.0
    assert g.recent.mismatches == 10  # still within the last 60 s


def test_the_time_window_forgets() -> None:
    clock = Clock()
    w = OutcomeWindow(last=1000, seconds=60.0, clock=clock)
    w.record("mismatch")
    w.record("unstable")
    clock.now += 30
    w.record("match")
    assert (w.gate().recent.compared, w.gate().recent.unstable) == (2, 1)
    clock.now += 31  # 61 s after the first two: they have left the window
    g = w.gate()
    assert (g.recent.compared, g.recent.matches, g.recent.unstable) == (1, 1, 0)
    assert g.last.compared == 2  # the last-N window is by count, not time


def test_unstable_outcomes_are_bounded() -> None:
    w = OutcomeWindow(last=10, seconds=60.0, clock=Clock())
    for _ in range(100):
        w.record("unstable")
    assert w.gate().last.unstable == 40  # at most 4 * last entries are kept
