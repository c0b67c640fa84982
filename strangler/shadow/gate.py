"""Gate figures: a route's parity over a rolling window, for people and for automatic
gates ("≥ 99.9% over the last 1,000 compared").

Totals since start say little once a route has run for a week: a regression shipped an
hour ago hides in them, and so does a fix. ``OutcomeWindow`` keeps two windows of a
route's judged outcomes (``match``, ``mismatch``, ``unstable``):

- ``last``: the last ``last`` *compared* outcomes (matches and mismatches), with the
  unstable ones that came between them;
- ``recent``: every outcome of the last ``seconds`` seconds.

``gate()`` returns them as a ``Gate`` of two frozen ``WindowFigures``; ``meets`` is the
check an automatic gate makes. Parity is ``matches / compared``; unstable outcomes (a
mismatch the primary's own second answer also showed: a race with a write, or noise)
never move it, and are reported beside it, since a route where most answers are
unstable cannot be judged at all.

Costs and bounds: ``record`` is O(1) (amortised); ``gate()`` is O(``SLOTS``). Memory:
a fixed ring of ``4 * last`` outcomes at 9 bytes each (36 KB per route for the default
1,000; unstable ones past that push out the oldest) and ``SLOTS`` time slots.

>>> now = [0.0]
>>> w = OutcomeWindow(last=3, seconds=60.0, clock=lambda: now[0])
>>> for outcome in ("mismatch", "match", "unstable", "match", "match"):
...     w.record(outcome)
>>> g = w.gate()
>>> (g.last.compared, g.last.unstable, g.last.parity), g.recent.compared
((3, 1, 1.0), 4)
>>> g.last.meets(0.999, compared=3), g.recent.meets(0.999, compared=3)
(True, False)
"""

from __future__ import annotations

import itertools
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "GATE_LAST",
    "GATE_SECONDS",
    "SLOTS",
    "Gate",
    "Judged",
    "OutcomeWindow",
    "WindowFigures",
    "merge_tails",
]

GATE_LAST: Final = 1000
GATE_SECONDS: Final = 300.0
SLOTS: Final = 60
"""Time slots per ``recent`` window: it moves on by ``seconds / SLOTS`` at a time."""

Judged = Literal["match", "mismatch", "unstable"]
_MATCH: Final = 0
_MISMATCH: Final = 1
_UNSTABLE: Final = 2
_CODES: Final = {"match": _MATCH, "mismatch": _MISMATCH, "unstable": _UNSTABLE}


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowFigures:
    """One window's counts. ``parity``: ``matches / compared`` (``None`` before the
    first comparison). ``seconds``: how far back the window reaches (for ``last``,
    the age of its oldest outcome; 0 when empty)."""

    compared: int
    matches: int
    mismatches: int
    unstable: int
    seconds: float

    @property
    def parity(self) -> float | None:
        return self.matches / self.compared if self.compared else None

    def meets(self, parity: float, *, compared: int) -> bool:
        """Whether at least ``compared`` comparisons were made in the window and their
        parity is at least ``parity`` (a ratio: 0.999 for 99.9%)."""
        p = self.parity
        return self.compared >= compared and p is not None and p >= parity

    def as_dict(self) -> dict[str, object]:
        return {
            "compared": self.compared,
            "matches": self.matches,
            "mismatches": self.mismatches,
            "unstable": self.unstable,
            "parity": self.parity,
            "seconds": self.seconds,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Gate:
    """A route's gate figures: ``last`` (the last ``last_n`` compared) and ``recent``
    (the last ``window`` seconds)."""

    last_n: int
    window: float
    last: WindowFigures
    recent: WindowFigures

    def as_dict(self) -> dict[str, object]:
        return {
            "last_n": self.last_n,
            "window_seconds": self.window,
            "last": self.last.as_dict(),
            "recent": self.recent.as_dict(),
        }


class OutcomeWindow:
    """One route's rolling windows of judged outcomes (see the module docstring).
    ``clock``: monotonic seconds (tests pass a fake one)."""

    __slots__ = (
        "_clock", "_codes", "_counts", "_size", "_slots", "_start", "_times", "_width", "last",
        "seconds",
    )  # fmt: skip

    def __init__(
        self,
        last: int = GATE_LAST,
        seconds: float = GATE_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.last = last
        self.seconds = seconds
        self._clock = clock
        self._width = seconds / SLOTS
        # A ring of (code, when), oldest at _start: two flat arrays, no object per entry.
        capacity = 4 * last
        self._codes = bytearray(capacity)
        self._times = array("d", bytes(8 * capacity))
        self._start = self._size = 0
        self._counts = [0, 0, 0]  # per code, over the ring
        self._slots: deque[list[int]] = deque()  # [slot index, matches, mismatches, unstable]

    def record(self, outcome: Judged) -> None:
        now = self._clock()
        code = _CODES[outcome]
        counts, codes, capacity = self._counts, self._codes, len(self._codes)
        # Keep the last ``last`` compared; unstable ones only while between them, and
        # never more than 4 * last entries in all.
        while self._size and (
            self._size == capacity
            or counts[_MATCH] + counts[_MISMATCH] + (code != _UNSTABLE) > self.last
        ):
            counts[codes[self._start]] -= 1
            self._start = (self._start + 1) % capacity
            self._size -= 1
        end = (self._start + self._size) % capacity
        codes[end] = code
        self._times[end] = now
        self._size += 1
        counts[code] += 1
        index = int(now // self._width)
        slots = self._slots
        if not slots or slots[-1][0] != index:
            slots.append([index, 0, 0, 0])
            self._expire(index)
        slots[-1][1 + code] += 1

    def _expire(self, index: int) -> None:
        slots = self._slots
        while slots and slots[0][0] <= index - SLOTS:
            slots.popleft()

    def gate(self) -> Gate:
        now = self._clock()
        c = self._counts
        oldest = self._times[self._start] if self._size else now
        last = WindowFigures(
            compared=c[_MATCH] + c[_MISMATCH],
            matches=c[_MATCH],
            mismatches=c[_MISMATCH],
            unstable=c[_UNSTABLE],
            seconds=now - oldest,
        )
        self._expire(int(now // self._width))
        m = sum(s[1] for s in self._slots)
        mm = sum(s[2] for s in self._slots)
        recent = WindowFigures(
            compared=m + mm,
            matches=m,
            mismatches=mm,
            unstable=sum(s[3] for s in self._slots),
            seconds=self.seconds,
        )
        return Gate(last_n=self.last, window=self.seconds, last=last, recent=recent)

    def tail(self) -> dict[str, object]:
        """The ring as data another process can merge (``merge_tails``): the codes
        oldest first as digits, and their times in whole milliseconds, the first
        absolute and the others as differences (small numbers: short JSON)."""
        capacity = len(self._codes)
        at = [(self._start + i) % capacity for i in range(self._size)]
        return _tail([(round(self._times[i] * 1000), self._codes[i]) for i in at])


def _tail(entries: list[tuple[int, int]]) -> dict[str, object]:
    """(ms, code) pairs, oldest first, as ``OutcomeWindow.tail`` data."""
    ms = [e[0] for e in entries]
    return {
        "codes": "".join("012"[e[1]] for e in entries),
        "ms": ms[:1] + [b - a for a, b in itertools.pairwise(ms)],
    }


def merge_tails(last: int, tails: list[dict[str, object]]) -> tuple[dict[str, object], list[int]]:
    """Several processes' rings (``OutcomeWindow.tail``) as the ring one process would
    hold had it seen every outcome: the newest ``last`` compared, with the unstable
    ones between them, at most ``4 * last`` entries. Returns that ring as a tail and
    its counts per code. Times are monotonic milliseconds, one clock for every
    process of a host; a tie keeps the order of ``tails``."""
    entries: list[tuple[int, int, int]] = []  # (ms, part, code): sorted, a tie by part
    for part, tail in enumerate(tails):
        codes, ms = tail.get("codes"), tail.get("ms")
        if not isinstance(codes, str) or not isinstance(ms, list) or len(ms) != len(codes):
            continue  # a file from an older version, or damaged: left out
        now = 0
        for digit, step in zip(codes, ms, strict=True):
            now += int(step)
            entries.append((now, part, "012".index(digit)))
    entries.sort()
    kept: list[tuple[int, int, int]] = []
    counts = [0, 0, 0]
    for entry in reversed(entries):
        code = entry[2]
        if len(kept) == 4 * last or (
            code != _UNSTABLE and counts[_MATCH] + counts[_MISMATCH] == last
        ):
            break
        kept.append(entry)
        counts[code] += 1
    kept.reverse()
    return _tail([(e[0], e[2]) for e in kept]), counts
