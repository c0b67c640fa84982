"""A bounded heavy-hitters table: the Space-Saving algorithm (Metwally, Agrawal and
El Abbadi, "Efficient computation of frequent and top-k elements in data streams", 2005).

At most ``capacity`` keys are tracked. A hit on a tracked key adds one to its count.
A new key, when the table is full, replaces the key with the smallest count ``c`` and
starts at ``c + 1`` with ``overcount = c``.

Error bound, for a stream of ``M`` hits and ``capacity = m``:

* every tracked count is an over-estimate: ``true <= count <= true + overcount``;
* ``overcount <= floor <= M / m``, where ``floor`` is the largest count ever evicted;
* every key seen more than ``M / m`` times is tracked, and two keys whose counts differ
  by more than ``floor`` are ranked correctly. With the default ``m = 1000``, any
  endpoint carrying more than 0.1 % of the unrouted traffic is never lost.

Finding the smallest count uses a lazy min-heap of ``(count, key)``: hits do not touch
the heap; an eviction pops the top and, when that entry is stale (the key was hit
since it was pushed), pushes it back with its current count and looks again. Every
tracked key has at least one entry whose count is at most its current count, so a
top entry that is up to date is the true minimum. Each hit makes at most one entry
stale, so an eviction costs amortised O(log m); a hit costs one dict lookup.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import final

from strangler.progress.state import EndpointCounts

__all__ = ["SpaceSaving"]


@final
class SpaceSaving:
    __slots__ = ("_heap", "capacity", "floor", "table")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self.table: dict[str, EndpointCounts] = {}
        self.floor = 0  # the largest count ever evicted: a bound for untracked keys
        self._heap: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self.table)

    def hit(self, key: str, now: float) -> None:
        """Count one occurrence of ``key`` seen at ``now``."""
        e = self.table.get(key)
        if e is None:
            self.insert(key, now)
        else:
            e.count += 1
            e.last_seen = now

    def insert(self, key: str, now: float) -> None:
        """Count a key that is not tracked (callers that inline ``hit`` use this)."""
        table, heap = self.table, self._heap
        if len(table) < self.capacity:
            table[key] = EndpointCounts(1, 0, now)
            heapq.heappush(heap, (1, key))
            if len(heap) > 2 * self.capacity + 16:
                self._rebuild()
            return
        while True:
            count, victim = heap[0]
            e = table.get(victim)
            if e is None:  # left over from a discarded key
                heapq.heappop(heap)
            elif e.count != count:  # stale: hit since it was pushed
                heapq.heapreplace(heap, (e.count, victim))
            else:
                break
        del table[victim]
        if count > self.floor:
            self.floor = count
        table[key] = EndpointCounts(count + 1, count, now)
        heapq.heapreplace(heap, (count + 1, key))

    def discard(self, key: str) -> EndpointCounts | None:
        """Stop tracking ``key`` (its heap entry is dropped lazily); return its counts."""
        return self.table.pop(key, None)

    def replace(self, entries: Mapping[str, EndpointCounts], floor: int) -> None:
        """Load ``entries`` (largest counts kept when there are too many)."""
        ranked = sorted(entries.items(), key=lambda kv: (-kv[1].count, kv[0]))
        self.table = {
            k: EndpointCounts(e.count, e.overcount, e.last_seen, e.classes)
            for k, e in ranked[: self.capacity]
        }
        dropped = ranked[self.capacity :]
        self.floor = max(floor, dropped[0][1].count if dropped else 0)
        self._rebuild()

    def ranked(self) -> list[tuple[str, EndpointCounts]]:
        """Tracked keys, largest count first (ties by key)."""
        return sorted(self.table.items(), key=lambda kv: (-kv[1].count, kv[0]))

    def _rebuild(self) -> None:
        self._heap = [(e.count, k) for k, e in self.table.items()]
        heapq.heapify(self._heap)
