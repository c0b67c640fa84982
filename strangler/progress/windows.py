"""Migration progress over time: per-route counts in time buckets, the windowed shares
(last 5 minutes, hour, day) and the long history, all mergeable across workers.

The request path never touches a bucket. ``ProgressTracker.record`` only bumps the
cumulative counters; ``rotate`` (run by the flusher every few seconds and before every
read) adds what the counters grew by since the previous rotation to the buckets of the
rotation's time. So a request lands in the bucket of a moment at most one flush
interval (5 s) after it was answered: that is the coarse clock, and it costs nothing
per request.

Every count goes into three tiers at once, each a sparse ``{bucket index: [legacy,
new]}`` keyed by absolute time (``int(t // width)``), so merging workers is a plain
sum per index and exact:

========= ======== ========== ==================================================
tier      width    kept       used for
========= ======== ========== ==================================================
``minute`` 1 min   60 min     the ``5m`` and ``1h`` windows
``five``   5 min   48 h       the ``24h`` window; history points of the last 48 h
``hour``   1 h     90 days    history points older than 48 h
========= ======== ========== ==================================================

A window of ``W`` seconds sums the buckets of its tier whose index is within
``W / width`` of the current one, the current (partial) bucket included. A reset at
time ``T`` (``strangler progress reset``) hides the buckets that start before ``T``.

Memory and file size are bounded per route by 60 + 576 + 2160 buckets, and only
buckets with traffic exist.

>>> s = Series()
>>> s.add(120.0, legacy=3, new=1)
>>> s.add(3720.0, legacy=0, new=4)
>>> s.window(3725.0, 300.0), s.window(3725.0, 3600.0)
((0, 4), (0, 4))
>>> s.window(3725.0, None)
(3, 5)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "FIVE",
    "HOUR",
    "KEEP",
    "MINUTE",
    "WINDOWS",
    "Series",
    "merge_series",
    "series_from_json",
    "series_to_json",
]

MINUTE: Final = 60
FIVE: Final = 300
HOUR: Final = 3600
# The tiers: name → (bucket width, buckets kept).
KEEP: Final = {"minute": (MINUTE, 60), "five": (FIVE, 48 * 12), "hour": (HOUR, 90 * 24)}
# The windows served: name → seconds (None: cumulative, since tracking began).
WINDOWS: Final[Mapping[str, float | None]] = {
    "5m": 300.0,
    "1h": 3600.0,
    "24h": 86400.0,
    "all": None,
}
DEFAULT_WINDOW: Final = "1h"

Buckets = dict[int, list[int]]  # bucket index → [legacy, new]


def _tier_for(seconds: float) -> tuple[str, int]:
    return ("minute", MINUTE) if seconds <= HOUR else ("five", FIVE)


@dataclass(slots=True)
class Series:
    """One route's time-bucketed counts (see the module docstring)."""

    minute: Buckets = field(default_factory=dict)
    five: Buckets = field(default_factory=dict)
    hour: Buckets = field(default_factory=dict)

    def tier(self, name: str) -> Buckets:
        b: Buckets = getattr(self, name)
        return b

    def add(self, now: float, *, legacy: int, new: int) -> None:
        """Count ``legacy``/``new`` requests at ``now`` in every tier."""
        for name, (width, _keep) in KEEP.items():
            _count(self.tier(name), int(now // width), legacy, new)

    def prune(self, now: float) -> None:
        """Drop the buckets older than each tier keeps."""
        for name, (width, keep) in KEEP.items():
            b = self.tier(name)
            oldest = int(now // width) - keep + 1
            for i in [i for i in b if i < oldest]:
                del b[i]

    def window(self, now: float, seconds: float | None, since: float = 0.0) -> tuple[int, int]:
        """``(legacy, new)`` over the last ``seconds`` (None: every bucket of the
        ``hour`` tier, i.e. 90 days) counting only buckets starting at ``since`` or
        later."""
        if seconds is None:
            name, width, first = "hour", HOUR, 0
        else:
            name, width = _tier_for(seconds)
            first = int(now // width) - int(seconds // width) + 1
        if since:
            first = max(first, -(-int(since) // width))  # the first bucket after since
        legacy = new = 0
        for i, (lg, nw) in self.tier(name).items():
            if i >= first:
                legacy += lg
                new += nw
        return legacy, new

    def copy(self) -> Series:
        return Series(
            minute={i: list(c) for i, c in self.minute.items()},
            five={i: list(c) for i, c in self.five.items()},
            hour={i: list(c) for i, c in self.hour.items()},
        )


def merge_series(parts: Iterable[Series]) -> Series:
    """The per-bucket sum: exact, whatever the order."""
    out = Series()
    for s in parts:
        for name in KEEP:
            dst = out.tier(name)
            for i, (lg, nw) in s.tier(name).items():
                _count(dst, i, lg, nw)
    return out


def _count(b: Buckets, i: int, legacy: int, new: int) -> None:
    cell = b.get(i)
    if cell is None:
        b[i] = [legacy, new]
    else:
        cell[0] += legacy
        cell[1] += new


def series_to_json(s: Series) -> dict[str, list[list[int]]]:
    """``{"minute": [[index, legacy, new], ...], ...}``, sorted by index."""
    return {name: [[i, *s.tier(name)[i]] for i in sorted(s.tier(name))] for name in KEEP}


def series_from_json(obj: object, what: str) -> Series:
    """Parse ``series_to_json``'s output; raise ``ValueError`` naming ``what``."""
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must be an object")
    s = Series()
    for name in KEEP:
        rows = obj.get(name, [])
        if not isinstance(rows, list):
            raise ValueError(f"{what}.{name} must be a list")
        b = s.tier(name)
        for row in rows:
            if (
                not isinstance(row, list)
                or len(row) != 3
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in row)
                or row[1] < 0
                or row[2] < 0
            ):
                raise ValueError(f"{what}.{name} rows must be [index, legacy, new] integers")
            b[row[0]] = [row[1], row[2]]
    return s
