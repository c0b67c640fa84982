"""Learn a route's *noisy* JSON paths: where the primary disagrees with itself.

Some fields differ between any two answers to the same request: timestamps, request
ids, random tokens, cache ages. Comparing them against the shadow only produces false
mismatches. In noise mode a shadow job sends the request to the primary a second time
and compares the two primary answers; each such pair is one *observation*, and the
JSON paths that differed in it (array indices generalised to ``[*]``) are counted.

Rule (``NoiseSpec``): once a route has at least ``min_observations`` observations, a
path that differed in at least ``samples`` of them is noisy. Noisy paths are excluded
from every comparison of the route (``compare.Rules.with_ignored``) and listed by the
admin API with their counts. The learner is bounded: it counts at most ``max_paths``
distinct paths per route (later new ones are counted in ``overflow`` only).

>>> from strangler.config.shadow_model import NoiseSpec, JsonPath
>>> n = NoiseLearner(NoiseSpec(enabled=True, samples=2, min_observations=3))
>>> at = JsonPath(("generated_at",))
>>> for diff in ([at], [], [at]):
...     changed = n.observe(diff)
>>> changed, [str(p) for p in n.noisy]
(True, ['$.generated_at'])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from strangler.config.shadow_model import JsonPath, NoiseSpec

__all__ = ["MAX_NOISE_PATHS", "NoiseLearner"]

MAX_NOISE_PATHS: Final = 1000


class NoiseLearner:
    """One route's noise counts. ``version`` changes whenever ``noisy`` does."""

    __slots__ = (
        "counts", "max_paths", "min_observations", "noisy", "observations", "overflow",
        "samples", "version",
    )  # fmt: skip

    def __init__(self, spec: NoiseSpec, *, max_paths: int = MAX_NOISE_PATHS) -> None:
        self.samples = spec.samples
        self.min_observations = spec.min_observations
        self.max_paths = max_paths
        self.observations = 0
        self.overflow = 0
        self.counts: dict[JsonPath, int] = {}
        self.noisy: frozenset[JsonPath] = frozenset()
        self.version = 0

    def configure(self, spec: NoiseSpec) -> None:
        """Adopt new thresholds (after a reload), keeping what was learned."""
        if (spec.samples, spec.min_observations) != (self.samples, self.min_observations):
            self.samples = spec.samples
            self.min_observations = spec.min_observations
            self._judge()

    def observe(self, differing: Iterable[JsonPath]) -> bool:
        """Count one observation and the (generalised) paths that differed in it.
        Returns whether the set of noisy paths changed."""
        self.observations += 1
        counts = self.counts
        crossed = False
        for path in differing:
            n = counts.get(path)
            if n is None:
                if len(counts) >= self.max_paths:
                    self.overflow += 1
                    continue
                n = 0
            counts[path] = n + 1
            crossed = crossed or n + 1 == self.samples
        if self.observations < self.min_observations:
            return False
        if crossed or self.observations == self.min_observations:
            return self._judge()
        return False

    def _judge(self) -> bool:
        if self.observations < self.min_observations:
            noisy: frozenset[JsonPath] = frozenset()
        else:
            noisy = frozenset(p for p, n in self.counts.items() if n >= self.samples)
        if noisy == self.noisy:
            return False
        self.noisy = noisy
        self.version += 1
        return True

    def as_dict(self) -> dict[str, object]:
        """For the admin API: the thresholds, the observation count and every noisy
        path with how often it differed, most frequent first."""
        ranked = sorted(self.noisy, key=lambda p: (-self.counts[p], str(p)))
        return {
            "observations": self.observations,
            "samples": self.samples,
            "min_observations": self.min_observations,
            "learning": self.observations < self.min_observations,
            "noisy_paths": [{"path": str(p), "differed": self.counts[p]} for p in ranked],
            "overflow": self.overflow,
        }
