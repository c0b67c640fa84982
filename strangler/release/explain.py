"""The debug header: which route and backend answered a request, and why.

With ``debug_headers: on`` (the whole config, or one route) every answer carries::

    X-Strangler-Route: orders-read; backend=orders; reason=canary; cohort=1234

``reason`` is the release decision (``strangler.release.decide``): ``primary``,
``canary``, ``override``, ``killed``, ``guard`` (the SLO guard has tripped),
``fallback`` (the new side failed and the primary answered) or ``rejected`` (an
override naming no allowed upstream, answered 400); ``cohort`` is the sticky bucket
(0..9999) when the canary is sticky. ``debug_headers: overrides`` adds it only to
requests that carry a valid override (a tester's), so ordinary traffic is untouched.

Cost: the route's ``Explainer`` is built when the snapshot is compiled; a route with
the header off has none (one attribute check per request). The values are prebuilt
for every (backend, reason) pair, so an answer only looks one up (a sticky canary's
adds its cohort).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final, Literal, final

from multidict import istr

from strangler.release.decide import REASONS, OverridePlan, ReleaseRequest

__all__ = ["DEBUG_HEADER", "DebugMode", "Explainer", "explainer"]

DEBUG_HEADER: Final = istr("X-Strangler-Route")
DebugMode = Literal["off", "on", "overrides"]


@final
class Explainer:
    """One route's debug header values."""

    __slots__ = ("_overrides", "_values")

    def __init__(
        self, route: str, upstreams: Collection[str], overrides: OverridePlan | None, *, only: bool
    ) -> None:
        self._values: dict[tuple[str, str], str] = {
            (up, reason): f"{route}; backend={up}; reason={reason}"
            for up in upstreams
            for reason in REASONS
        }
        # only: show it to requests that carry a valid override (None: to every one)
        self._overrides = overrides if only else None

    def value(
        self, req: ReleaseRequest, upstream: str, reason: str, cohort: int | None
    ) -> str | None:
        """The header's value for an answer from ``upstream``, or ``None`` (not shown)."""
        if self._overrides is not None:
            forced = self._overrides.pick(req)
            if forced is None or forced.reason != "override":
                return None
        text = self._values.get((upstream, reason))
        if text is None:  # pragma: no cover - every side and reason is prebuilt
            return None
        return text if cohort is None else f"{text}; cohort={cohort}"


def explainer(
    route: str, upstreams: Collection[str], overrides: OverridePlan | None, mode: DebugMode
) -> Explainer | None:
    """The route's ``Explainer`` for ``mode``; ``None`` when it shows nothing."""
    if mode == "off" or (mode == "overrides" and overrides is None):
        return None
    return Explainer(route, upstreams, overrides, only=mode == "overrides")
