"""Record a bounded, privacy-safe traffic sample on a running proxy, to plan against later.

Per-request cost when not recording: the request path reads
``recording.sampler`` and finds ``None`` (two attribute loads). While recording,
a request costs one ``random()`` call, and a sampled one a small dict.

What one sampled request keeps (a ``sample`` line of ``plan.traffic``): method,
decoded path, the *names* of its query parameters, the route it matched, and the
*names* of those request headers that some route of the config matches on. Never a
query, header or cookie value, never a body: the file can be shared.

Bounds: ``rate`` in (0, 1]; at most ``MAX_SAMPLES`` samples (the request's
``max``, capped); the sampler stops taking samples ``seconds`` after it started
(at most ``MAX_SECONDS``), even if no one ever stops it, so a forgotten recording
costs nothing but its bounded memory.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Final, Protocol, final

from strangler.runtime import Snapshot

__all__ = ["MAX_SAMPLES", "MAX_SECONDS", "Recording", "Sampler", "route_header_names"]

MAX_SAMPLES: Final = 100_000
MAX_SECONDS: Final = 3600.0


class _Request(Protocol):
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query(self) -> Mapping[str, str]: ...  # only its keys are read
    @property
    def headers(self) -> Mapping[str, str]: ...  # case-insensitive; only membership


def route_header_names(snap: Snapshot) -> tuple[str, ...]:
    """Every header name some route of ``snap`` matches on, lower-case, sorted."""
    names = {n.lower() for r in snap.config.routes for n in r.match.headers}
    return tuple(sorted(names))


@final
class Sampler:
    """Takes a share of requests until full or expired. Owned by ``Recording``."""

    __slots__ = ("_clock", "_deadline", "_rand", "headers", "limit", "rate", "samples", "started")

    def __init__(
        self,
        rate: float,
        limit: int,
        seconds: float,
        headers: tuple[str, ...],
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.rate = rate
        self.limit = limit
        self.headers = headers
        self.started = clock()
        self._deadline = self.started + seconds
        self._rand = rand
        self._clock = clock
        self.samples: list[dict[str, object]] = []

    def offer(self, request: _Request, route: str) -> None:
        """Maybe keep ``request`` (which matched ``route``). Never raises, no I/O."""
        if self._rand() >= self.rate or len(self.samples) >= self.limit:
            return
        if self._clock() > self._deadline:
            self.limit = len(self.samples)  # expired: take nothing more
            return
        query = request.query
        headers = request.headers
        self.samples.append(
            {
                "method": request.method,
                "path": request.path,
                "query_keys": sorted(set(query)) if query else [],
                "route": route,
                "header_names": [h for h in self.headers if h in headers],
            }
        )

    @property
    def full(self) -> bool:
        return len(self.samples) >= self.limit


@final
class Recording:
    """The proxy's one recording slot: ``sampler`` is ``None`` when not recording."""

    __slots__ = ("sampler",)

    def __init__(self) -> None:
        self.sampler: Sampler | None = None
