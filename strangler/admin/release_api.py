"""The release-control part of the admin API: see the routes' state, turn the dials.

Reads (no token): ``GET /api/routes``, ``GET /api/routes/{name}``,
``GET /api/upstreams``, ``GET /api/events``. Writes (bearer token; each one is
appended to the audit log with who, when, before and after):
``POST /api/routes/{name}/percent`` ``{"percent": "10%" | 10 | null}``,
``POST /api/routes/{name}/rollback``, ``POST /api/routes/{name}/enable``,
``POST /api/rollback`` (every route). The whole API is described in
``GET /openapi.yaml``.

A write lands in the shared state file at once; every worker (and every replica
sharing the file) applies it within ``state.file_poll`` (0.5 s by default).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from aiohttp import web

from strangler.admin.app import ADMIN_STATE
from strangler.admin.auth import require_token
from strangler.config.units import percent
from strangler.forward.pool import Forwarder
from strangler.release.controls import ReleaseControls, UnknownRoute, effective_new_ratio
from strangler.release.state import RouteState, StateChange, StateFileError
from strangler.runtime import CompiledRoute, SnapshotHolder

OPENAPI: Final = Path(__file__).with_name("openapi.yaml")
MAX_EVENTS: Final = 1000
RELEASE = web.AppKey("release", ReleaseControls)
HOLDER = web.AppKey("holder", SnapshotHolder)
FORWARDER = web.AppKey("forwarder", Forwarder)


def _match_summary(route: CompiledRoute) -> dict[str, object]:
    spec = route.spec
    if spec is None:
        return {}
    m = spec.match
    out: dict[str, object] = {}
    if m.path is not None:
        out["path"] = m.path
    if m.path_prefix is not None:
        out["path_prefix"] = m.path_prefix
    if m.methods is not None:
        out["methods"] = sorted(m.methods)
    if m.host is not None:
        out["host"] = m.host
    for kind, values in (("headers", m.headers), ("query", m.query), ("cookies", m.cookies)):
        if values:
            out[kind] = {
                k: (v.value if v.value is not None else v.present) for k, v in values.items()
            }
    return out


def route_view(route: CompiledRoute, controls: ReleaseControls) -> dict[str, object]:
    """One route: its config side by side with its runtime state."""
    plan = route.release
    state: RouteState = controls.state.for_route(route.name)
    spec = route.spec
    canary: dict[str, object] | None = None
    if plan.canary is not None and spec is not None and spec.canary is not None:
        c = spec.canary
        canary = {
            "to": c.to,
            "percent": round(c.ratio * 100.0, 4),
            "sticky": str(c.sticky) if c.sticky is not None else None,
            "group": c.group,
        }
    slo = None
    if plan.slo is not None:
        s = plan.slo
        slo = {
            "error_rate": s.error_rate,
            "latency_p99": s.latency_p99,
            "window": s.window,
            "min_requests": s.min_requests,
        }
    verdict = controls.verdicts().get(route.name)
    return {
        "name": route.name,
        "owner": route.owner,
        "match": _match_summary(route),
        "to": plan.to,
        "primary": plan.primary,
        "new": plan.new,
        "canary": canary,
        "overrides": plan.overrides is not None,
        "fallback": plan.fallback is not None,
        "slo": slo,
        "state": state.to_dict(),
        "effective_new_percent": round(effective_new_ratio(route, state) * 100.0, 4),
        "guard": verdict.as_dict() if verdict is not None else None,
        "status": _status_word(state),
    }


def _status_word(state: RouteState) -> str:
    if state.killed:
        return "rolled-back"
    if state.guard_tripped:
        return "guard-tripped"
    return "active"


def _route(request: web.Request) -> CompiledRoute:
    name = request.match_info["name"]
    route = request.app[HOLDER].current.route(name)
    if route is None:
        raise web.HTTPNotFound(text=f"no route named {name!r} in the loaded config\n")
    return route


def _who(request: web.Request) -> str:
    return f"admin@{request.remote or 'unknown'}"


def _change_view(change: StateChange) -> dict[str, object]:
    return {
        "route": change.route,
        "changed": change.changed,
        "before": change.before.to_dict(),
        "after": change.after.to_dict(),
        "persisted": change.persisted,
    }


def _changes(changes: list[StateChange]) -> web.Response:
    """200 with every change; a ``warning`` when one took effect in memory only."""
    body: dict[str, object] = {"changes": [_change_view(c) for c in changes]}
    refused = next((c.not_persisted for c in changes if not c.persisted), None)
    if refused is not None:
        body["warning"] = (
            f"applied on every worker but not persisted ({refused}); "
            "it is stored as soon as the disk takes writes again"
        )
    return web.json_response(body)


async def list_routes(request: web.Request) -> web.Response:
    controls, snap = request.app[RELEASE], request.app[HOLDER].current
    return web.json_response(
        {"version": snap.version, "routes": [route_view(r, controls) for r in snap.routes]}
    )


async def get_route(request: web.Request) -> web.Response:
    return web.json_response(route_view(_route(request), request.app[RELEASE]))


async def list_upstreams(request: web.Request) -> web.Response:
    snap = request.app[HOLDER].current
    forwarder = request.app[FORWARDER]
    out = []
    for name, up in sorted(snap.config.upstreams.items()):
        t = up.timeouts
        out.append(
            {
                "name": name,
                "url": up.url,
                "timeouts": {"connect": t.connect, "read": t.read, "total": t.total},
                "max_connections": up.max_connections,
                "in_flight": forwarder.pool(up).inflight,
            }
        )
    return web.json_response({"upstreams": out})


async def list_events(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "50")
    limit = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 4 else 0
    if not 1 <= limit <= MAX_EVENTS:
        raise web.HTTPBadRequest(text=f"limit must be a whole number from 1 to {MAX_EVENTS}\n")
    return web.json_response({"events": request.app[RELEASE].events(limit)})


async def set_percent(request: web.Request) -> web.Response:
    require_token(request, request.app[ADMIN_STATE].token)
    route = _route(request)
    if route.release.canary is None:
        raise web.HTTPConflict(
            text=f"route {route.name!r} has no canary: add one to its config to set a share\n"
        )
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='send JSON: {"percent": "10%"} (null resets)\n') from None
    if not isinstance(body, dict) or "percent" not in body:
        raise web.HTTPBadRequest(text='send JSON: {"percent": "10%"} (null resets)\n')
    raw = body["percent"]
    try:
        ratio = None if raw is None else percent(raw)
    except ValueError as e:
        raise web.HTTPBadRequest(text=f"{e}\n") from None
    controls = request.app[RELEASE]
    group = route.release.canary.group
    targets = [route]
    if group is not None:  # a cohort group moves together, or users would be split
        snap = request.app[HOLDER].current
        targets = [r for r in snap.routes if r.release.canary and r.release.canary.group == group]
    changes = [await controls.set_percent(r.name, ratio, _who(request)) for r in targets]
    return _changes(changes)


async def rollback(request: web.Request) -> web.Response:
    require_token(request, request.app[ADMIN_STATE].token)
    route = _route(request)
    change = await request.app[RELEASE].kill(route.name, _who(request))
    return _changes([change])


async def rollback_all(request: web.Request) -> web.Response:
    require_token(request, request.app[ADMIN_STATE].token)
    changes = await request.app[RELEASE].kill_all(_who(request))
    return _changes(changes)


async def enable(request: web.Request) -> web.Response:
    require_token(request, request.app[ADMIN_STATE].token)
    route = _route(request)
    change = await request.app[RELEASE].enable(route.name, _who(request))
    return _changes([change])


async def openapi(request: web.Request) -> web.FileResponse:
    return web.FileResponse(OPENAPI, headers={"Content-Type": "application/yaml"})


@web.middleware
async def _unknown_route(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:  # a race between a reload and a write
    try:
        return await handler(request)
    except UnknownRoute as e:
        raise web.HTTPNotFound(text=f"no route named {e.args[0]!r} in the loaded config\n") from e
    except StateFileError as e:  # the store is down (Redis) or unreadable: never pretend
        raise web.HTTPServiceUnavailable(
            text=f"the release state store did not take the change: {e}\n"
        ) from e


def add_release_routes(
    app: web.Application,
    controls: ReleaseControls,
    holder: SnapshotHolder,
    forwarder: Forwarder,
) -> None:
    app[RELEASE] = controls
    app[HOLDER] = holder
    app[FORWARDER] = forwarder
    app.middlewares.append(_unknown_route)
    r = app.router
    r.add_get("/api/routes", list_routes)
    r.add_get("/api/routes/{name}", get_route)
    r.add_get("/api/upstreams", list_upstreams)
    r.add_get("/api/events", list_events)
    r.add_post("/api/routes/{name}/percent", set_percent)
    r.add_post("/api/routes/{name}/rollback", rollback)
    r.add_post("/api/routes/{name}/enable", enable)
    r.add_post("/api/rollback", rollback_all)
    r.add_get("/openapi.yaml", openapi)
