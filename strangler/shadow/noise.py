"""Learn a route's *noisy* JSON paths: where the primary keeps disagreeing with itself.

Some fields differ between any two answers to the same request: timestamps, request
ids, random tokens, cache ages. Comparing them against the shadow only produces false
mismatches. In noise mode a shadow job sends the request to the primary a second time
and compares the two primary answers; each such pair is one *observation*, and the
JSON paths that differed in it are counted, as they are (``$.items[3].at``, never
generalised to ``[*]``).

Rule (``NoiseSpec``), over the observations of the last ``window`` seconds: a path is
noisy while the window holds at least ``min_observations`` observations, and the path
differed in at least ``samples`` of them and in at least ``share`` of them. So noise
*decays*: a field that stops flipping is compared again once its flips have left the
window, and a record that changed once because a user wrote to it (a race, rare next
to the reads) never reaches the share. Paths that end at an array element (``$[2]``,
an element added or removed) and the whole document (``$``) are never learned: one
changed element must not blind the comparison of a whole array.

Noisy paths are excluded from every comparison of the route (``compare.Rules.
with_ignored``) and listed by the admin API with their counts. Costs and bounds: the
window is kept as ``SLOTS`` time slots, each with its observation count and per-path
flip counts; ``observe`` is O(paths that differed + noisy paths), a slot expiring
re-judges every counted path once. At most ``max_paths`` distinct paths are counted
(later new ones only in ``overflow``, until old ones expire).

>>> from strangler.config.shadow_model import NoiseSpec, JsonPath
>>> now = [0.0]
>>> n = NoiseLearner(NoiseSpec(enabled=True, samples=2, min_observations=3), clock=lambda: now[0])
>>> at = JsonPath(("generated_at",))
>>> for diff in ([at], [], [at]):
...     changed = n.observe(diff)
>>> changed, [str(p) for p in n.noisy]
(True, ['$.generated_at'])
>>> now[0] = 601.0  # ten minutes on, nothing observed since: the flips have expired
>>> [str(p) for p in n.noisy]
[]
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final

from strangler.config.shadow_model import JsonPath, NoiseSpec

__all__ = ["MAX_NOISE_PATHS", "SLOTS", "NoiseLearner", "learnable"]

MAX_NOISE_PATHS: Final = 1000
SLOTS: Final = 10
"""Time slots per window: an observation is remembered for the window, give or take one
slot (window / SLOTS)."""


def learnable(path: JsonPath) -> bool:
    """Whether noise learning may ever ignore ``path``: not the whole document, not a
    whole array element (``$.items[2]``), no wildcard.

    >>> learnable(JsonPath(("items", 2, "at"))), learnable(JsonPath(("items", 2)))
    (True, False)
    """
    steps = path.steps
    return (
        bool(steps)
        and type(steps[-1]) is not int
        and all(type(s) is int or type(s) is str for s in steps)
    )


class _Slot:
    __slots__ = ("flips", "index", "observations")

    def __init__(self, index: int) -> None:
        self.index = index
        self.observations = 0
        self.flips: dict[JsonPath, int] = {}


class NoiseLearner:
    """One route's noise counts over a rolling time window. ``version`` changes
    whenever ``noisy`` does. ``clock``: monotonic seconds (tests pass a fake one)."""

    __slots__ = (
        "_clock", "_noisy", "_slots", "_width", "configured", "max_paths", "min_observations",
        "overflow", "samples", "share", "totals", "version", "window", "window_observations",
    )  # fmt: skip

    def __init__(
        self,
        spec: NoiseSpec,
        *,
        max_paths: int = MAX_NOISE_PATHS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self.max_paths = max_paths
        self.samples = spec.samples
        self.min_observations = spec.min_observations
        self.share = spec.share
        self.window = spec.window
        self._width = spec.window / SLOTS
        self._slots: deque[_Slot] = deque()
        self.totals: dict[JsonPath, int] = {}  # flips per path over the window's slots
        self.window_observations = 0
        self.overflow = 0
        self._noisy: frozenset[JsonPath] = frozenset()
        self.version = 0
        self.configured: tuple[JsonPath, ...] = ()  # the route's own ignore paths, shown

    def configure(self, spec: NoiseSpec) -> None:
        """Adopt new thresholds (after a reload). What was learned is kept, unless the
        window's length changed (its slots would not line up): then it starts over."""
        self.samples = spec.samples
        self.min_observations = spec.min_observations
        self.share = spec.share
        if spec.window != self.window:
            self.window = spec.window
            self._width = spec.window / SLOTS
            self._slots.clear()
            self.totals.clear()
            self.window_observations = 0
        self._judge(self.totals)

    @property
    def noisy(self) -> frozenset[JsonPath]:
        """The paths noisy now (what has left the window is forgotten first)."""
        if self._slots:
            self._advance(self._clock())
        return self._noisy

    @property
    def observations(self) -> int:
        """Observations in the current window."""
        if self._slots:
            self._advance(self._clock())
        return self.window_observations

    def observe(self, differing: Iterable[JsonPath]) -> bool:
        """Count one observation and the paths (with their indices) that differed in
        it; paths ``learnable`` rejects are not counted. Returns whether the set of
        noisy paths changed."""
        now = self._clock()
        before = self.version
        self._advance(now)
        index = int(now // self._width)
        if not self._slots or self._slots[-1].index != index:
            self._slots.append(_Slot(index))
        slot = self._slots[-1]
        slot.observations += 1
        self.window_observations += 1
        totals = self.totals
        touched: list[JsonPath] = []
        for path in differing:
            if not learnable(path):
                continue
            n = totals.get(path)
            if n is None:
                if len(totals) >= self.max_paths:
                    self.overflow += 1
                    continue
                n = 0
            totals[path] = n + 1
            slot.flips[path] = slot.flips.get(path, 0) + 1
            touched.append(path)
        # Only the paths just counted can become noisy; only noisy ones can stop being
        # (the denominator grew).
        self._judge(
            (*touched, *self._noisy), full=self.window_observations == self.min_observations
        )
        return self.version != before

    def _advance(self, now: float) -> None:
        """Forget the slots that have left the window."""
        oldest = int(now // self._width) - SLOTS + 1
        slots = self._slots
        if not slots or slots[0].index >= oldest:
            return
        totals = self.totals
        while slots and slots[0].index < oldest:
            gone = slots.popleft()
            self.window_observations -= gone.observations
            for path, n in gone.flips.items():
                left = totals[path] - n
                if left:
                    totals[path] = left
                else:
                    del totals[path]
        self._judge(totals, full=True)

    def _noisy_now(self, path: JsonPath) -> bool:
        n = self.totals.get(path, 0)
        return n >= self.samples and n >= self.share * self.window_observations

    def _judge(self, candidates: Iterable[JsonPath], *, full: bool = False) -> None:
        if self.window_observations < self.min_observations:
            noisy: frozenset[JsonPath] = frozenset()
        elif full:
            noisy = frozenset(p for p in self.totals if self._noisy_now(p))
        else:
            cands = set(candidates)
            noisy = (self._noisy - cands) | {p for p in cands if self._noisy_now(p)}
        if noisy != self._noisy:
            self._noisy = noisy
            self.version += 1

    def as_dict(self) -> dict[str, object]:
        """For the admin API: the thresholds, the window's observation count, every
        noisy path with how often it differed in the window (most frequent first), and
        every path compare ignores on this route now with the reason."""
        noisy = self.noisy
        observations = self.window_observations
        ranked = sorted(noisy, key=lambda p: (-self.totals[p], str(p)))
        window = f"{self.window:g}s"
        ignored: list[dict[str, object]] = [
            {"path": str(p), "why": "config: compare.ignore"} for p in self.configured
        ]
        ignored.extend(
            {
                "path": str(p),
                "why": f"noise: the primary's own two answers differed in {self.totals[p]} "
                f"of {observations} pairs in the last {window}",
            }
            for p in ranked
        )
        return {
            "observations": observations,
            "window_seconds": self.window,
            "samples": self.samples,
            "min_observations": self.min_observations,
            "share": self.share,
            "learning": observations < self.min_observations,
            "noisy_paths": [
                {
                    "path": str(p),
                    "differed": self.totals[p],
                    "share": self.totals[p] / observations,
                }
                for p in ranked
            ],
            "ignored": ignored,
            "overflow": self.overflow,
        }
