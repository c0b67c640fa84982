"""The compiled snapshot of a config, and the holder that swaps it on reload.

A ``Snapshot`` is everything the request path needs, computed once: the router, and
per route its release plan and, for every upstream the route may send to, the
upstream definition, whether it counts as legacy or new, and pre-labelled metric
children. ``SnapshotHolder`` keeps one reference; a request reads
``holder.current`` once and finishes on that snapshot even if a reload swaps in
another meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from prometheus_client import Counter

from strangler.config.model import LEGACY, UNROUTED, Config, MatchSpec, Route, Upstream
from strangler.forward.headers import TrustedNetworks
from strangler.metrics import Metrics, RouteMetrics
from strangler.release import REASONS, ReleasePlan, compile_release, fixed_plan
from strangler.release.explain import Explainer, explainer
from strangler.router import Router
from strangler.shadow.service import CompiledShadow, compile_shadow
from strangler.translate import EMPTY_PLAN, Plan, build_plan

TARGET_LEGACY: Final = "legacy"
TARGET_NEW: Final = "new"


@dataclass(frozen=True, slots=True)
class Side:
    """One upstream a route may send to, as the request path needs it."""

    upstream: Upstream
    target: str  # "legacy" or "new": whether this answer counts as migrated
    metrics: RouteMetrics


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    """One route as the request path sees it.

    ``upstream``/``target``/``metrics`` describe the route's ``to`` (what answers
    when no release control intervenes); ``sides`` every upstream the release plan
    may pick, keyed by name; ``decisions`` the decision counters by reason.
    """

    name: str
    owner: str
    release: ReleasePlan
    sides: Mapping[str, Side]
    decisions: Mapping[str, Counter]
    spec: Route | None  # None for the built-in unrouted route
    shadow: CompiledShadow | None = None  # None: no mirroring (one attribute check)
    translate: Plan = EMPTY_PLAN
    translate_on: str | None = None  # the upstream whose traffic is translated (new side)
    explain: Explainer | None = None  # the debug header (None: off, one attribute check)

    @property
    def default(self) -> Side:
        return self.sides[self.release.to]

    @property
    def upstream(self) -> Upstream:
        return self.default.upstream

    @property
    def target(self) -> str:
        return self.default.target

    @property
    def metrics(self) -> RouteMetrics:
        return self.default.metrics


@dataclass(frozen=True, slots=True)
class Snapshot:
    config: Config
    router: Router[CompiledRoute]
    routes: tuple[CompiledRoute, ...]
    unrouted: CompiledRoute
    trusted: TrustedNetworks

    @property
    def version(self) -> str:
        return self.config.version

    def shadows(self) -> list[CompiledShadow]:
        return [r.shadow for r in self.routes if r.shadow is not None]

    def route(self, name: str) -> CompiledRoute | None:
        for r in self.routes:
            if r.name == name:
                return r
        return None


def _translated_side(plan: ReleasePlan, spec: Route | None) -> str | None:
    """The upstream a route's translation is for: its new side, or, for a route still
    answered by legacy that only mirrors, its shadow upstream (parity is then measured
    on the translated answers)."""
    if plan.new is not None:
        return plan.new
    if spec is not None and spec.shadow is not None:
        return spec.shadow.to
    return None


def target_of(upstream: str) -> str:
    return TARGET_LEGACY if upstream == LEGACY else TARGET_NEW


def compile_snapshot(config: Config, metrics: Metrics) -> Snapshot:
    """Compile a validated config. Pure CPU work; raises nothing for a valid config."""

    def build(name: str, owner: str, plan: ReleasePlan, spec: Route | None) -> CompiledRoute:
        sides = {}
        for up in sorted(plan.upstreams):
            target = target_of(up)
            sides[up] = Side(
                upstream=config.upstreams[up],
                target=target,
                metrics=metrics.bind_route(name, up, target),
            )
        plan_t = build_plan(spec.translate if spec is not None else None)
        shadow = (
            compile_shadow(name, spec.shadow, config.upstreams)
            if spec is not None and spec.shadow is not None
            else None
        )
        translate_on = _translated_side(plan, spec) if not plan_t.is_empty else None
        decisions: dict[str, Counter] = {
            reason: metrics.release_decisions.labels(name, reason) for reason in REASONS
        }
        return CompiledRoute(
            name=name,
            owner=owner,
            release=plan,
            sides=MappingProxyType(sides),
            decisions=MappingProxyType(decisions),
            spec=spec,
            shadow=shadow,
            translate=plan_t,
            translate_on=translate_on,
            explain=explainer(
                name,
                plan.upstreams,
                plan.overrides,
                config.debug_headers
                if spec is None or spec.debug_headers is None
                else spec.debug_headers,
            ),
        )

    routes = tuple(
        build(r.name, r.owner, compile_release(r, config.upstreams), r) for r in config.routes
    )
    unrouted = build(UNROUTED, "", fixed_plan(UNROUTED), None)
    entries: list[tuple[MatchSpec, CompiledRoute]] = [
        (r.match, c) for r, c in zip(config.routes, routes, strict=True)
    ]
    return Snapshot(
        config=config,
        router=Router.compile(entries, unrouted),
        routes=routes,
        unrouted=unrouted,
        trusted=TrustedNetworks(config.forwarded.trusted),
    )


class SnapshotHolder:
    """The one mutable reference to the current snapshot."""

    __slots__ = ("current", "generation")

    def __init__(self, first: Snapshot) -> None:
        self.current = first
        self.generation = 1

    def swap(self, new: Snapshot) -> Snapshot:
        old, self.current = self.current, new
        self.generation += 1
        return old
