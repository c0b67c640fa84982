"""The autopilot part of the admin API.

Reads (no token): ``GET /api/migrate`` (every planned route: stage, status, gates
with their figures, time in stage, note, timeline) and ``GET /api/migrate/{route}``.
Writes (bearer token, audited): ``POST /api/migrate/{route}/{action}`` with action
``pause``, ``resume``, ``approve``, ``abort``, ``retry`` or ``skip`` and an optional
JSON body ``{"reason": "...", "stage": "canary"}`` (``stage``: retry only; ``reason``
is required for ``skip``). 404: no plan on that route; 409: the action does not apply
to the plan's state now (the message says why).

The states come from the shared state file, so every worker answers the same; the
gate figures are those of the last evaluation, by the worker that holds the lease
(``leader``), and absent from the others' answers.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from strangler.admin.app import ADMIN_STATE
from strangler.admin.auth import require_token
from strangler.migrate.machine import ActionError
from strangler.migrate.runner import ACTIONS, Autopilot

AUTOPILOT = web.AppKey("autopilot", Autopilot)


async def list_plans(request: web.Request) -> web.Response:
    pilot = request.app[AUTOPILOT]
    views = await asyncio.to_thread(pilot.views)
    leader = pilot.store.leader(pilot.clock())
    return web.json_response({"leader": leader, "routes": list(views.values())})


async def get_plan(request: web.Request) -> web.Response:
    pilot = request.app[AUTOPILOT]
    name = request.match_info["route"]
    views = await asyncio.to_thread(pilot.views)
    if name not in views:
        raise web.HTTPNotFound(text=f"route {name!r} has no migrate plan\n")
    return web.json_response(views[name])


async def act(request: web.Request) -> web.Response:
    require_token(request, request.app[ADMIN_STATE].token)
    pilot = request.app[AUTOPILOT]
    name, action = request.match_info["route"], request.match_info["action"]
    if action not in ACTIONS:
        raise web.HTTPBadRequest(text=f"unknown action {action!r}; one of {', '.join(ACTIONS)}\n")
    reason, stage = "", None
    if request.body_exists:
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text='send JSON: {"reason": "..."}\n') from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text='send JSON: {"reason": "..."}\n')
        reason = str(body.get("reason") or "")[:500]
        stage = None if body.get("stage") is None else str(body["stage"])
    who = f"admin@{request.remote or 'unknown'}"
    try:
        out = await pilot.act(name, action, who, reason, stage)
    except KeyError:
        raise web.HTTPNotFound(text=f"route {name!r} has no migrate plan\n") from None
    except ActionError as e:
        raise web.HTTPConflict(text=f"{name}: {e}\n") from None
    t = out.transition
    return web.json_response(
        {
            "route": name,
            "action": action,
            "status": out.state.status,
            "share": out.share,
            "transition": None if t is None else t.as_dict(),
        }
    )


def add_migrate_routes(app: web.Application, pilot: Autopilot) -> None:
    app[AUTOPILOT] = pilot
    app.router.add_get("/api/migrate", list_plans)
    app.router.add_get("/api/migrate/{route}", get_plan)
    app.router.add_post("/api/migrate/{route}/{action}", act)
