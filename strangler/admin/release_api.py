"""The release-control part of the admin API: see the routes' state, turn the dials.

Reads (no token): ``GET /api/routes``, ``GET /api/routes/{name}``, ``GET /api/groups``,
``GET /api/upstreams``, ``GET /api/events``. Writes (bearer token; each one is
appended to the audit log with who, when, before, after and the reason, and logged
in the main log in one line):

====================================  ===============================================
``POST /api/routes/{name}/percent``   ``{"percent": "10%" | 10 | null}``: the canary share
``POST /api/routes/{name}/rollback``  kill switch on
``POST /api/routes/{name}/enable``    kill switch off, tripped guard re-armed
``POST /api/groups/{group}/...``      the same three for a canary group
``POST /api/rollback``, ``/api/enable``  every route
====================================  ===============================================

Every write body is an optional JSON object: ``reason`` (one line, kept in the audit
log), and on a route ``only_route``. A write on a route of a canary group applies
to the whole group in one atomic state change (its routes share cohorts), unless
``only_route`` is true. The answer (``release_report.report``) lists each route's
change with the new side's share before and after, and human ``lines``. The whole
API is described in ``GET /openapi.yaml``.

A write lands in the state store at once; every worker (and every replica sharing
the store) applies it within ``state.file_poll`` (0.5 s by default). When the state
file's disk refuses it (full, read-only), the write still takes effect on every
worker, for every route of its scope, and is answered 200 with ``persisted: false``
and a ``warning`` (it is stored once the disk takes writes again).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from aiohttp import web

from strangler.admin.app import ADMIN_STATE
from strangler.admin.auth import require_token
from strangler.admin.release_report import report
from strangler.config.units import percent
from strangler.forward.pool import Forwarder
from strangler.release.controls import (
    ReleaseControls,
    ReleaseWrite,
    Scope,
    UnknownGroup,
    UnknownRoute,
    effective_new_ratio,
    file_new_ratio,
)
from strangler.release.state import RouteState, StateFileError
from strangler.runtime import CompiledRoute, SnapshotHolder

log = logging.getLogger("strangler.admin")

OPENAPI: Final = Path(__file__).with_name("openapi.yaml")
MAX_EVENTS: Final = 1000
MAX_REASON: Final = 500
"""Characters a write's ``reason`` may have (after folding it onto one line)."""
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
        "file_new_percent": round(file_new_ratio(route) * 100.0, 4),
        "group": controls.group_of(route.name),
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


def _clean_reason(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise web.HTTPBadRequest(text="reason must be a string\n")
    # One line in the audit and the main log, whatever the client sent.
    reason = " ".join("".join(c if c.isprintable() else " " for c in raw).split())
    if len(reason) > MAX_REASON:
        raise web.HTTPBadRequest(text=f"reason is longer than {MAX_REASON} characters\n")
    return reason or None


async def _write_body(request: web.Request, allowed: frozenset[str]) -> dict[str, object]:
    """The JSON object of a write (an empty body is ``{}``), its keys checked."""
    usage = "send a JSON object with " + ", ".join(sorted(allowed)) + " (all optional)"
    if not await request.read():
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text=f"{usage}\n") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=f"{usage}\n")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise web.HTTPBadRequest(text=f"unknown field {unknown[0]!r}: {usage}\n")
    if not isinstance(body.get("only_route", False), bool):
        raise web.HTTPBadRequest(text="only_route must be true or false\n")
    return body


_ROUTE_WRITE: Final = frozenset({"reason", "only_route"})
_GROUP_WRITE: Final = frozenset({"reason"})


async def _scope(
    request: web.Request, allowed: frozenset[str]
) -> tuple[Scope, dict[str, object], str | None]:
    """The scope a write names (path ``{name}`` or ``{group}``, else every route),
    its body and its reason. Checks the token first."""
    require_token(request, request.app[ADMIN_STATE].token)
    controls = request.app[RELEASE]
    if "name" in request.match_info:
        route = _route(request)
        body = await _write_body(request, allowed | _ROUTE_WRITE)
        scope = controls.scope(route.name, only_route=bool(body.get("only_route")))
    else:
        body = await _write_body(request, allowed | _GROUP_WRITE)
        scope = controls.scope(group=request.match_info.get("group"))
    return scope, body, _clean_reason(body.get("reason"))


def _answer(request: web.Request, write: ReleaseWrite) -> web.Response:
    routes = {r.name: r for r in request.app[HOLDER].current.routes}
    body = report(write, routes)
    lines = body["lines"]
    assert isinstance(lines, list)
    log.info("admin write: %s", " | ".join(lines))  # one line per write, never the token
    return web.json_response(body)


async def set_percent(request: web.Request) -> web.Response:
    scope, body, reason = await _scope(request, frozenset({"percent"}))
    snap = request.app[HOLDER].current
    for name in scope.routes:
        route = snap.route(name)
        if route is None or route.release.canary is None:
            raise web.HTTPConflict(
                text=f"route {name!r} has no canary: add one to its config to set a share\n"
            )
    if "percent" not in body:
        raise web.HTTPBadRequest(text='send JSON: {"percent": "10%"} (null resets)\n')
    raw = body["percent"]
    try:
        ratio = None if raw is None else percent(raw)
    except ValueError as e:
        raise web.HTTPBadRequest(text=f"{e}\n") from None
    controls = request.app[RELEASE]
    return _answer(request, await controls.set_percent(scope, ratio, _who(request), reason=reason))


async def rollback(request: web.Request) -> web.Response:
    scope, _, reason = await _scope(request, frozenset())
    return _answer(request, await request.app[RELEASE].kill(scope, _who(request), reason=reason))


async def enable(request: web.Request) -> web.Response:
    scope, _, reason = await _scope(request, frozenset())
    return _answer(request, await request.app[RELEASE].enable(scope, _who(request), reason=reason))


async def list_groups(request: web.Request) -> web.Response:
    controls = request.app[RELEASE]
    snap = request.app[HOLDER].current
    out = []
    for group, names in controls.groups().items():
        views = [route_view(r, controls) for n in names if (r := snap.route(n)) is not None]
        out.append({"name": group, "routes": list(names), "status": _group_status(views)})
    return web.json_response({"groups": out})


def _group_status(views: list[dict[str, object]]) -> str:
    """``split`` when the group's routes disagree (an ``--only-route`` write)."""
    seen = {(v["status"], v["effective_new_percent"]) for v in views}
    if len(seen) > 1:
        return "split"
    return str(views[0]["status"]) if views else "active"


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
    except UnknownGroup as e:
        raise web.HTTPNotFound(
            text=f"no canary group named {e.args[0]!r} in the loaded config\n"
        ) from e
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
    r.add_get("/api/groups", list_groups)
    r.add_get("/api/upstreams", list_upstreams)
    r.add_get("/api/events", list_events)
    r.add_post("/api/routes/{name}/percent", set_percent)
    r.add_post("/api/routes/{name}/rollback", rollback)
    r.add_post("/api/routes/{name}/enable", enable)
    r.add_post("/api/groups/{group}/percent", set_percent)
    r.add_post("/api/groups/{group}/rollback", rollback)
    r.add_post("/api/groups/{group}/enable", enable)
    r.add_post("/api/rollback", rollback)
    r.add_post("/api/enable", enable)
    r.add_get("/openapi.yaml", openapi)
