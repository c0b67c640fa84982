"""Replay a traffic sample through the current and the proposed config: the plan.

Both configs are compiled with ``runtime.compile_snapshot``, the code the proxy runs
on a (re)load, and every distinct request of the sample is matched with the real
``Router.match`` of each snapshot. What the plan reports:

* **moved**: requests whose route or backend differs (backend: what answers by the
  route's config, ``backend_of``: its ``to``, or its canary's share), grouped by
  ``(old route, old backend) → (new route, new backend)`` with each group's top
  endpoints folded into templates (``progress.fold``);
* **owner changes**: requests a route of one owner answered before and a route of
  another owner answers after (unrouted traffic has no owner: claiming it is the
  point of a new route, not a change of owner);
* **idle routes**: routes of the proposed config that catch nothing in the sample;
* **progress, before → after**, traffic-weighted as ``strangler status`` computes it:
  the migrated share (requests answered by new services; a canary counts with its
  configured share) and the remaining legacy surface (endpoints only legacy answers
  because no route claims them, and their share of the requests);
* **release**: the canary/migration state each new or changed route starts in;
* **not evaluated**: match conditions the sample's format does not carry (a host,
  header, query or cookie condition against an access log without them). The
  replay evaluates them as if the request had none of those, and says so.

Cost: one ``Router.match`` per distinct request and snapshot; identical requests are
counted once by ``traffic``. Nothing here does I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, final

from multidict import CIMultiDict, CIMultiDictProxy

from strangler.config.model import EMPTY_MAP, LEGACY, UNROUTED, Config, Route
from strangler.metrics import Metrics
from strangler.plan.traffic import Key, Traffic
from strangler.progress.fold import fold_path
from strangler.runtime import TARGET_NEW, CompiledRoute, Snapshot, compile_snapshot, target_of

__all__ = [
    "TOP_PATHS",
    "Figures",
    "Group",
    "OwnerChange",
    "PlanResult",
    "ReleaseRow",
    "Replayer",
    "Unevaluated",
    "backend_of",
    "plan",
]

TOP_PATHS: Final = 5


@final
class _Req:
    """A ``RequestLike`` built from one ``Key`` of the sample."""

    __slots__ = ("cookies", "headers", "host", "method", "path", "query")

    def __init__(self, key: Key) -> None:
        self.method = key.method
        self.path = key.path
        self.host = key.host
        self.query: Mapping[str, str] = dict(key.query) if key.query else EMPTY_MAP
        self.headers: Mapping[str, str] = (
            CIMultiDictProxy(CIMultiDict(key.headers)) if key.headers else EMPTY_MAP
        )
        self.cookies: Mapping[str, str] = dict(key.cookies) if key.cookies else EMPTY_MAP


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    """Requests that move from one (route, backend) to another."""

    old_route: str
    old_backend: str
    new_route: str
    new_backend: str
    requests: int
    top: tuple[tuple[str, int], ...]  # ("GET /users/{id}", requests), most first


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class OwnerChange:
    old_route: str
    old_owner: str
    new_route: str
    new_owner: str
    requests: int


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    """Progress figures of one config over the sample (see ``strangler status``)."""

    requests: int
    new: float  # expected requests answered by new services (canaries at their share)
    legacy_endpoints: int  # remaining legacy surface: endpoints no route claims
    legacy_surface_requests: int  # requests to those endpoints

    @property
    def migrated_share(self) -> float:
        return self.new / self.requests if self.requests else 0.0

    @property
    def legacy_surface_share(self) -> float:
        return self.legacy_surface_requests / self.requests if self.requests else 0.0


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseRow:
    """The release state a new or changed route starts in when the config is applied."""

    route: str
    change: str  # "added", "changed", "removed"
    before: str  # "legacy" | "canary 10% → billing" | "migrated → billing" | "-"
    after: str
    requests: int  # in the sample, under the proposed config
    runtime: str | None = None  # the running proxy's override that survives the reload


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Unevaluated:
    route: str
    condition: str  # "header x-beta (value)", "host", ...


@final
@dataclass(slots=True, kw_only=True)
class PlanResult:
    requests: int
    moved: int
    groups: list[Group]
    owner_changes: list[OwnerChange]
    idle_routes: list[str]
    before: Figures
    after: Figures
    release: list[ReleaseRow]
    unevaluated: list[Unevaluated]
    route_requests: dict[str, int] = field(default_factory=dict)  # proposed config

    @property
    def moved_share(self) -> float:
        return self.moved / self.requests if self.requests else 0.0


def _new_share(route: CompiledRoute) -> float:
    """The share of a route's requests new services answer, by its config alone."""
    spec = route.spec
    base = 1.0 if route.target == TARGET_NEW else 0.0
    if spec is None or spec.canary is None:
        return base
    c = spec.canary
    canary_new = 1.0 if target_of(c.to) == TARGET_NEW else 0.0
    return c.ratio * canary_new + (1.0 - c.ratio) * base


def backend_of(route: CompiledRoute) -> str:
    """The backend that answers ``route`` by its config: its ``to``; a canary's
    target at 100%; ``'legacy+10%→billing'`` for a canary in between."""
    spec = route.spec
    if spec is None or spec.canary is None or spec.canary.ratio <= 0.0:
        return route.upstream.name
    c = spec.canary
    if c.ratio >= 1.0:
        return c.to
    return f"{route.upstream.name}+{c.ratio * 100:g}%→{c.to}"


def release_word(route: Route | None) -> str:
    """``'legacy'``, ``'canary 10% → billing'``, ``'migrated → billing'``, or ``'-'``."""
    if route is None:
        return "-"
    if route.canary is not None:
        pct = route.canary.ratio * 100.0
        if 0.0 < pct < 100.0:
            return f"canary {pct:g}% → {route.canary.to}"
        to = route.canary.to if pct >= 100.0 else route.to
        return "legacy" if to == LEGACY else f"migrated → {to}"
    return "legacy" if route.to == LEGACY else f"migrated → {route.to}"


_CONDITION_NEEDS: Final = {
    "host": "host",
    "headers": "headers",
    "query": "query",
    "cookies": "cookies",
}


def unevaluated(config: Config, caps: frozenset[str]) -> list[Unevaluated]:
    """Match conditions of ``config`` that a sample with ``caps`` cannot evaluate."""
    out: list[Unevaluated] = []
    for r in config.routes:
        m = r.match
        if m.host is not None and "host" not in caps:
            out.append(Unevaluated(route=r.name, condition=f"host {m.host}"))
        for kind, conds, word in (
            ("headers", m.headers, "header"),
            ("query", m.query, "query parameter"),
            ("cookies", m.cookies, "cookie"),
        ):
            for name, vm in conds.items():
                valued = vm.present and vm.value is not None
                if kind not in caps:
                    out.append(Unevaluated(route=r.name, condition=f"{word} {name}"))
                elif valued and kind != "cookies" and f"{kind.rstrip('s')}_values" not in caps:
                    out.append(Unevaluated(route=r.name, condition=f"{word} {name} (value)"))
        if m.query_only is not None and "query" not in caps:
            out.append(Unevaluated(route=r.name, condition="query_only"))
    return out


@final
class Replayer:
    """Both snapshots, compiled once; ``routes(key)`` is the (old, new) route of a request."""

    __slots__ = ("new", "old")

    def __init__(self, current: Config, proposed: Config) -> None:
        # A private registry each: the plan never touches the proxy's metrics.
        self.old: Snapshot = compile_snapshot(current, Metrics())
        self.new: Snapshot = compile_snapshot(proposed, Metrics())

    def routes(self, key: Key) -> tuple[CompiledRoute, CompiledRoute]:
        req = _Req(key)
        return self.old.router.match(req)[0], self.new.router.match(req)[0]


def _release(
    old: Config, new: Config, hits: Mapping[str, int], runtime: Mapping[str, str]
) -> list[ReleaseRow]:
    before = {r.name: r for r in old.routes}
    after = {r.name: r for r in new.routes}
    rows: list[ReleaseRow] = []
    for name, r in after.items():
        o = before.get(name)
        b, a = release_word(o), release_word(r)
        if o is not None and b == a:
            continue
        rows.append(
            ReleaseRow(
                route=name,
                change="added" if o is None else "changed",
                before=b,
                after=a,
                requests=hits.get(name, 0),
                # Runtime state is kept by route name across a reload: a new route
                # has none and starts at its configured percent.
                runtime=runtime.get(name) if o is not None else None,
            )
        )
    for name, o in before.items():
        if name not in after:
            rows.append(
                ReleaseRow(
                    route=name, change="removed", before=release_word(o), after="-", requests=0
                )
            )
    return rows


def plan(
    current: Config,
    proposed: Config,
    traffic: Traffic,
    *,
    runtime: Mapping[str, str] | None = None,
) -> PlanResult:
    """The plan of moving from ``current`` to ``proposed`` over ``traffic``.

    ``runtime``: per route name, a note on the running proxy's release state that
    survives a reload (a percent override, a rollback), from ``--admin``.
    """
    rp = Replayer(current, proposed)
    old_snap, new_snap = rp.old, rp.new
    share_old = {id(r): _new_share(r) for r in (*old_snap.routes, old_snap.unrouted)}
    share_new = {id(r): _new_share(r) for r in (*new_snap.routes, new_snap.unrouted)}
    backends_old = {id(r): backend_of(r) for r in (*old_snap.routes, old_snap.unrouted)}
    backends_new = {id(r): backend_of(r) for r in (*new_snap.routes, new_snap.unrouted)}
    folded: dict[str, str] = {}
    groups: dict[tuple[str, str, str, str], Counter[str]] = {}
    owners: Counter[tuple[str, str, str, str]] = Counter()
    hits: Counter[str] = Counter()
    surface_old: Counter[str] = Counter()
    surface_new: Counter[str] = Counter()
    new_before = new_after = 0.0
    total = moved = 0
    for key, n in traffic.counts.items():
        o, w = rp.routes(key)
        total += n
        hits[w.name] += n
        new_before += n * share_old[id(o)]
        new_after += n * share_new[id(w)]
        endpoint = ""
        if o is old_snap.unrouted or w is new_snap.unrouted or o.name != w.name:
            template = folded.get(key.path)
            if template is None:
                template = folded[key.path] = fold_path(key.path)
            endpoint = key.method + " " + template
            if o is old_snap.unrouted:
                surface_old[endpoint] += n
            if w is new_snap.unrouted:
                surface_new[endpoint] += n
        ob, wb = backends_old[id(o)], backends_new[id(w)]
        if o.name == w.name and ob == wb:
            continue
        moved += n
        if not endpoint:
            template = folded.get(key.path)
            if template is None:
                template = folded[key.path] = fold_path(key.path)
            endpoint = key.method + " " + template
        groups.setdefault((o.name, ob, w.name, wb), Counter())[endpoint] += n
        if o is not old_snap.unrouted and w is not new_snap.unrouted and o.owner != w.owner:
            owners[(o.name, o.owner, w.name, w.owner)] += n
    group_list = sorted(
        (
            Group(
                old_route=k[0],
                old_backend=k[1],
                new_route=k[2],
                new_backend=k[3],
                requests=sum(c.values()),
                top=tuple(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_PATHS]),
            )
            for k, c in groups.items()
        ),
        key=lambda g: (-g.requests, g.old_route, g.new_route),
    )
    return PlanResult(
        requests=total,
        moved=moved,
        groups=group_list,
        owner_changes=[
            OwnerChange(old_route=k[0], old_owner=k[1], new_route=k[2], new_owner=k[3], requests=v)
            for k, v in sorted(owners.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        idle_routes=[r.name for r in new_snap.routes if not hits.get(r.name)],
        before=Figures(
            requests=total,
            new=new_before,
            legacy_endpoints=len(surface_old),
            legacy_surface_requests=sum(surface_old.values()),
        ),
        after=Figures(
            requests=total,
            new=new_after,
            legacy_endpoints=len(surface_new),
            legacy_surface_requests=sum(surface_new.values()),
        ),
        release=_release(current, proposed, hits, runtime or {}),
        unevaluated=_dedupe(
            unevaluated(current, traffic.capabilities) + unevaluated(proposed, traffic.capabilities)
        ),
        route_requests={r.name: hits.get(r.name, 0) for r in new_snap.routes}
        | {UNROUTED: hits.get(UNROUTED, 0)},
    )


def _dedupe(items: list[Unevaluated]) -> list[Unevaluated]:
    return list(dict.fromkeys(items))
