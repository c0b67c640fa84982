"""The compiled snapshot of a config, and the holder that swaps it on reload.

A ``Snapshot`` is everything the request path needs, computed once: the router, and
per route its upstream, target and pre-labelled metric children. ``SnapshotHolder``
keeps one reference; a request reads ``holder.current`` once and finishes on that
snapshot even if a reload swaps in another meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from strangler.config.model import LEGACY, UNROUTED, Config, MatchSpec, Upstream
from strangler.forward.headers import TrustedNetworks
from strangler.metrics import Metrics, RouteMetrics
from strangler.router import Router

TARGET_LEGACY: Final = "legacy"
TARGET_NEW: Final = "new"


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    """One route as the request path sees it."""

    name: str
    upstream: Upstream
    target: str  # "legacy" or "new": whether this answer counts as migrated
    metrics: RouteMetrics


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


def compile_snapshot(config: Config, metrics: Metrics) -> Snapshot:
    """Compile a validated config. Pure CPU work; raises nothing for a valid config."""

    def build(name: str, upstream: Upstream) -> CompiledRoute:
        target = TARGET_LEGACY if upstream.name == LEGACY else TARGET_NEW
        return CompiledRoute(
            name=name,
            upstream=upstream,
            target=target,
            metrics=metrics.bind_route(name, upstream.name, target),
        )

    legacy = config.upstreams[LEGACY]
    routes = tuple(build(r.name, config.upstreams[r.to]) for r in config.routes)
    unrouted = build(UNROUTED, legacy)
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
